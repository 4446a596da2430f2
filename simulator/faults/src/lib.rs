//! Fault stages as sans-IO, seeded, composable transforms of byte streams and messages.
