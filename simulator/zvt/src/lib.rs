//! ZVT (ECR to terminal): APDUs, serial framing, and both roles as state machines. Sans-IO.
