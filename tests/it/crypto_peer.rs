//! Integration tests: crypto_peer.
