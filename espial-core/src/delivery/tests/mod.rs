//! Tests of the delivery engine.
