//! Mirror segment manufacturing records: the record model, validation with
//! physical ranges and import from the optics centre's CSV and JSON exports.
//!
//! Not built yet: see issue #6.
