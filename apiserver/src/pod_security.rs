//! Pod Security admission (being written).
