//! The output of one command as it is read: bounded, and searched for the sentinel.

use crate::output::{MAX_OUTPUT_CHARS, truncate_middle};

/// Bytes kept from the start of a huge output while it is being read.
const BUFFER_HEAD_BYTES: usize = 256 * 1024;
/// Bytes kept from the end of a huge output while it is being read.
const BUFFER_TAIL_BYTES: usize = 1024 * 1024;

/// Accumulated output, bounded: a huge output keeps its head and tail and counts the rest.
#[derive(Default)]
pub(super) struct OutputBuffer {
    pub(super) data: Vec<u8>,
    dropped: usize,
    /// Where to resume searching for the sentinel.
    scan_from: usize,
}

impl OutputBuffer {
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        if self.data.len() > BUFFER_HEAD_BYTES + 2 * BUFFER_TAIL_BYTES {
            let end = self.data.len() - BUFFER_TAIL_BYTES;
            self.data.drain(BUFFER_HEAD_BYTES..end);
            self.dropped += end - BUFFER_HEAD_BYTES;
            self.scan_from = BUFFER_HEAD_BYTES;
        }
    }

    /// Finds `marker` followed by a full line; returns (marker start, line after marker, end).
    pub(super) fn find_sentinel(&mut self, marker: &[u8]) -> Option<(usize, String, usize)> {
        let from = self.scan_from.min(self.data.len());
        let found = self.data[from..]
            .windows(marker.len())
            .position(|w| w == marker)
            .map(|i| from + i);
        let Some(start) = found else {
            self.scan_from = self.data.len().saturating_sub(marker.len());
            return None;
        };
        let rest = start + marker.len();
        let newline = self.data[rest..].iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&self.data[rest..rest + newline]).into_owned();
        Some((start, line, rest + newline + 1))
    }

    /// The text of `data[..end]`, cut to [`MAX_OUTPUT_CHARS`].
    pub(super) fn text(&self, end: usize) -> (String, bool) {
        let raw = String::from_utf8_lossy(&self.data[..end.min(self.data.len())]);
        truncate_middle(&raw, MAX_OUTPUT_CHARS, self.dropped)
    }
}
