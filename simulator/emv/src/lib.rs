//! EMV card side: APDUs, the vpcd wire protocol, card profiles and the card as a state machine. Sans-IO.
