//! Placeholder: the Usage API client lands here.
