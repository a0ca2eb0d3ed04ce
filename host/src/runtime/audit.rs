//! A runtime whose plugins' linear memories the host can read afterwards,
//! for audits: after a session, search every memory a plugin had for a
//! secret the plugin must never have held. The memories are plain heap
//! buffers with explicit bounds checks (no guard pages), so this runtime is
//! slower than the normal one and is meant for tests and audits only.

use std::sync::{Arc, Mutex};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// One linear memory's bytes, kept after its instance is gone.
type Buffer = Arc<Mutex<Vec<u8>>>;

/// Every linear memory the audited runtime created.
#[derive(Clone, Default)]
pub struct MemoryAudit {
    memories: Arc<Mutex<Vec<Buffer>>>,
}

impl MemoryAudit {
    /// How many memories were created so far.
    pub fn memory_count(&self) -> usize {
        self.lock_list().len()
    }

    /// Whether any memory holds `needle`. Call it while no guest call runs.
    pub fn contains(&self, needle: &[u8]) -> bool {
        if needle.is_empty() {
            return false;
        }
        self.lock_list().iter().any(|memory| {
            let bytes = memory.lock().unwrap_or_else(|e| e.into_inner());
            bytes.windows(needle.len()).any(|window| window == needle)
        })
    }

    fn lock_list(&self) -> std::sync::MutexGuard<'_, Vec<Buffer>> {
        self.memories.lock().unwrap_or_else(|e| e.into_inner())
    }
}

// SAFETY: memories are zero-filled heap buffers of the requested size; the
// engine is configured with no reservation and no guard pages (see
// `configure`), so compiled code bounds-checks every access and a moved
// buffer is allowed.
unsafe impl MemoryCreator for MemoryAudit {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        if reserved_size_in_bytes.is_some_and(|r| r > 0) || guard_size_in_bytes > 0 {
            return Err("the audited runtime needs no reservation and no guard pages".into());
        }
        let buffer: Buffer = Arc::new(Mutex::new(vec![0; minimum]));
        self.lock_list().push(buffer.clone());
        Ok(Box::new(AuditedMemory { buffer, maximum }))
    }
}

struct AuditedMemory {
    buffer: Buffer,
    maximum: Option<usize>,
}

// SAFETY: the pointer is the buffer's, valid until the next `grow_to`
// (the engine allows moving memories here) and the size is its length.
unsafe impl LinearMemory for AuditedMemory {
    fn byte_size(&self) -> usize {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn byte_capacity(&self) -> usize {
        self.byte_size()
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        if self.maximum.is_some_and(|maximum| new_size > maximum) {
            wasmtime::bail!("memory past its maximum");
        }
        let mut bytes = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        bytes.resize(new_size, 0);
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.buffer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut_ptr()
    }
}

/// What the engine needs to use [`MemoryAudit`]'s memories.
pub(super) fn configure(config: &mut wasmtime::Config, audit: &MemoryAudit) {
    config.with_host_memory(Arc::new(audit.clone()));
    config.memory_reservation(0);
    config.memory_guard_size(0);
    config.memory_reservation_for_growth(0);
    config.memory_may_move(true);
    config.memory_init_cow(false);
}
