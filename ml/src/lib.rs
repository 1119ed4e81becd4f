//! Mirror health model: feature rows and ONNX inference through `ort`.
//!
//! Not built yet: see issue #7.
