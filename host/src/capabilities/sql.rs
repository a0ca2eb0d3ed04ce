//! The `sql` capability. Linked now so every plugin links against the whole
//! contract; it answers `denied` until the PostgreSQL backend lands.

use super::secrets::SecretHandle;
use super::{Capability, HostState};
use crate::runtime::bindings::storehost::plugin::sql::{
    Host, HostConnection, HostTransaction, Notification, Rows, Value,
};
use crate::runtime::bindings::wit_types::HostError;
use wasmtime::component::Resource;

/// A pooled database connection (not constructed yet: `connect` refuses).
pub struct Connection;
/// An open transaction (not constructed yet).
pub struct Transaction;

type Answer<T> = wasmtime::Result<Result<T, HostError>>;

impl HostState {
    fn sql_refused<T>(&self) -> Answer<T> {
        Ok(Err(self.refuse(Capability::Sql)))
    }
}

impl Host for HostState {
    async fn connect(&mut self, _dsn: Resource<SecretHandle>) -> Answer<Resource<Connection>> {
        self.sql_refused()
    }
}

impl HostConnection for HostState {
    async fn execute(&mut self, _: Resource<Connection>, _: String, _: Vec<Value>) -> Answer<u64> {
        self.sql_refused()
    }

    async fn query(&mut self, _: Resource<Connection>, _: String, _: Vec<Value>) -> Answer<Rows> {
        self.sql_refused()
    }

    async fn begin(&mut self, _: Resource<Connection>) -> Answer<Resource<Transaction>> {
        self.sql_refused()
    }

    async fn listen(&mut self, _: Resource<Connection>, _: String) -> Answer<()> {
        self.sql_refused()
    }

    async fn wait_notification(
        &mut self,
        _: Resource<Connection>,
        _: u32,
    ) -> Answer<Option<Notification>> {
        self.sql_refused()
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        Ok(())
    }
}

impl HostTransaction for HostState {
    async fn execute(&mut self, _: Resource<Transaction>, _: String, _: Vec<Value>) -> Answer<u64> {
        self.sql_refused()
    }

    async fn query(&mut self, _: Resource<Transaction>, _: String, _: Vec<Value>) -> Answer<Rows> {
        self.sql_refused()
    }

    async fn commit(&mut self, _: Resource<Transaction>) -> Answer<()> {
        self.sql_refused()
    }

    async fn drop(&mut self, transaction: Resource<Transaction>) -> wasmtime::Result<()> {
        self.table.delete(transaction)?;
        Ok(())
    }
}
