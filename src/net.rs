//! Transports and servers (tokio): TCP listeners in the mini-redis shape, framed connections.
