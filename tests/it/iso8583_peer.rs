//! Integration tests: iso8583_peer.
