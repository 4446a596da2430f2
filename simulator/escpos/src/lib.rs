//! ESC/POS: streaming parser into a receipt model, and the receipt printer as a state machine. Sans-IO.
