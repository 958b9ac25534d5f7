//! Starting tool servers inside bubblewrap.
