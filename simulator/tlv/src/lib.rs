//! BER-TLV (ISO/IEC 8825-1 as EMV uses it): tags, lengths, constructed values, unknown tags kept.
