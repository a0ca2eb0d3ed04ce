//! Captures what the host logs, to assert that secrets never appear.
//!
//! One global subscriber (at every level, through the host's SDK cap)
//! writes each event to the capture of the thread that emitted it. A
//! thread-local subscriber per test would race with the others over
//! tracing's global callsite interest and could miss events.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// Ends this thread's capture when dropped.
pub struct CaptureGuard {
    previous: Option<Captured>,
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

/// Where the global subscriber writes: the emitting thread's capture, or
/// nowhere.
struct ThreadCapture;

struct Sink(Option<Captured>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(captured) = &self.0 {
            captured.0.lock().unwrap().extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = Sink;

    fn make_writer(&'a self) -> Sink {
        Sink(CURRENT.with(|current| current.borrow().clone()))
    }
}

/// Logs at every level into a buffer for the current thread (use a
/// current-thread runtime so the plugin's calls log here too).
pub fn capture() -> (CaptureGuard, Captured) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(ThreadCapture)
            .finish()
            .with(storehost::logging::sdk_cap());
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the tests");
    });
    let captured = Captured::default();
    let previous = CURRENT.with(|current| current.borrow_mut().replace(captured.clone()));
    (CaptureGuard { previous }, captured)
}
