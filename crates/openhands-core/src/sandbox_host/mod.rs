//! Sandboxes built from a tool-server launcher: workspaces, running tool servers, stops.

mod launcher;

pub use launcher::{
    Isolation, LaunchResources, LaunchedToolServer, NoResources, ToolServerLauncher,
};
