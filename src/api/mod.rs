//! The Segment-compatible Tracking API.
pub mod normalize;
pub mod wire;
