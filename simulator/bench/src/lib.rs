//! Bench files: the topology of a bench (nodes, where each real one is, links and standing faults) as data.
