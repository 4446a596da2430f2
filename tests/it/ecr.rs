//! Integration tests: ecr.
