//! Harness for end-to-end tests over the real binaries (filled by the log-server issue).
