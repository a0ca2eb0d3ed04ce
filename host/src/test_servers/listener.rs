//! Whether the socket listening on a port is the one our child holds.
//!
//! A server that binds a port we picked can lose it to anyone who binds port
//! 0 in between: another test's front, an in-process Git server. An open
//! port is then no proof the server started: CI once sent a test's Azure
//! requests to a Git server that took Azurite's port while node was still
//! starting, and got 401s. So a start counts only once the child itself
//! holds the listener, as `/proc` tells.

use std::collections::HashSet;
use std::path::Path;

const TCP_TABLES: [&str; 2] = ["/proc/net/tcp", "/proc/net/tcp6"];

/// `st` of a listening socket in the tables above.
const TCP_LISTEN: &str = "0A";

/// Whether process `pid` holds a socket listening on `port` of 127.0.0.1
/// (where every server here listens); where `/proc` cannot tell (not
/// Linux), whether anything listens there. Asked again and again while a
/// server starts: a refused connection answers at once, while the tables
/// are read in full (every bucket of the kernel's hash, some milliseconds
/// each), so they are read only once the port is open.
pub(super) fn held_by(pid: u32, port: u16) -> bool {
    if !super::port_open(port) {
        return false;
    }
    let Some(inodes) = listening_inodes(port) else {
        return true;
    };
    !inodes.is_empty() && holds_socket(pid, &inodes)
}

/// The inodes of the TCP sockets listening on `port`; None without `/proc`.
fn listening_inodes(port: u16) -> Option<HashSet<u64>> {
    let tables: Vec<String> = TCP_TABLES
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .collect();
    if tables.is_empty() {
        return None;
    }
    let rows = tables.iter().flat_map(|table| table.lines().skip(1));
    Some(rows.filter_map(|row| listener_inode(row, port)).collect())
}

/// A table row's socket inode, when the row is a listener on `port`.
fn listener_inode(row: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (_, local_port) = fields.get(1)?.rsplit_once(':')?;
    let listens_here =
        *fields.get(3)? == TCP_LISTEN && u16::from_str_radix(local_port, 16).ok()? == port;
    if !listens_here {
        return None;
    }
    fields.get(9)?.parse().ok()
}

fn holds_socket(pid: u32, inodes: &HashSet<u64>) -> bool {
    let Ok(descriptors) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    descriptors
        .flatten()
        .filter_map(|descriptor| std::fs::read_link(descriptor.path()).ok())
        .any(|target| socket_inode(&target).is_some_and(|inode| inodes.contains(&inode)))
}

/// The inode in a descriptor's link text `socket:[12345]`.
fn socket_inode(target: &Path) -> Option<u64> {
    let text = target.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::{Command, Stdio};

    #[test]
    fn a_listener_this_process_holds_is_seen_as_its_own() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Not checked again after the drop: a test beside this one may
        // bind the freed port at once, in this same process.
        assert!(held_by(std::process::id(), port));
    }

    #[test]
    fn a_port_another_process_listens_on_is_not_the_childs() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let held = held_by(child.id(), port);
        let _ = child.kill();
        let _ = child.wait();
        assert!(!held, "the port is open, but the child does not hold it");
    }

    #[test]
    fn a_row_is_read_only_when_it_listens_on_the_port() {
        let listening = "0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 4242 1";
        let connected = "1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000  0 4343 1";
        assert_eq!(listener_inode(listening, 8080), Some(4242));
        assert_eq!(listener_inode(listening, 8081), None);
        assert_eq!(listener_inode(connected, 8080), None);
        assert_eq!(listener_inode("garbage", 8080), None);
    }
}
