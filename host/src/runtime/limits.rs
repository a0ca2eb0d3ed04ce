//! Per-plugin limits: linear memory and a deadline per call.

use std::time::Duration;
use wasmtime::ResourceLimiter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on each linear memory of a plugin instance.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call, host capability time included.
    pub call_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 * 1024 * 1024,
            call_deadline: Duration::from_secs(60),
        }
    }
}

/// Enforces the memory cap and remembers that it was hit, so the host can
/// report a memory-limit error rather than a bare trap.
pub struct MemoryLimiter {
    limit_bytes: usize,
    hit: bool,
    peak_bytes: usize,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: usize) -> Self {
        MemoryLimiter {
            limit_bytes,
            hit: false,
            peak_bytes: 0,
        }
    }

    pub fn limit_bytes(&self) -> usize {
        self.limit_bytes
    }

    /// The largest linear memory granted so far.
    pub fn peak_bytes(&self) -> usize {
        self.peak_bytes
    }

    /// Whether a growth was refused since the last call to this.
    pub fn take_hit(&mut self) -> bool {
        std::mem::take(&mut self.hit)
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            self.hit = true;
            // An error (not `Ok(false)`) traps at once with a clear cause,
            // instead of the guest's allocator aborting as "unreachable".
            wasmtime::bail!("memory limit of {} bytes reached", self.limit_bytes);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}
