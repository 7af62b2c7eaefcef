//! ferrolb API types, group `ferrolb.io` (issue 3).
