//! Table tests of the rule NLU.
