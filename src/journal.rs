//! The journal: every frame on every link and every decision, as JSON lines, flushed per event.
