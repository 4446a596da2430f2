//! Payment security primitives on RustCrypto: PIN blocks, KCV, MACs, DUKPT, EMV keys and cryptograms. Sans-IO.
