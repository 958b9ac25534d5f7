//! The filtering HTTP/HTTPS proxy that sandboxes reach the network through.
