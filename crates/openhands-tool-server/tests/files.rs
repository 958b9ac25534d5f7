//! The editor and the file operations through the real binary, with the symlink attacks
//! they must refuse.

mod common;

use common::{repo_with, start};
use openhands_core::tool_protocol::{
    EditorCommand, EditorOutcome, FailureCode, FileContent, Request, WriteReply, ZipReply,
};
use std::io::Read;
use std::os::unix::fs::symlink;

fn edit(command: EditorCommand) -> Request {
    Request::Edit { command }
}

fn list(path: &str) -> Request {
    Request::ListFiles { path: path.into() }
}

fn read(path: &str) -> Request {
    Request::ReadFile {
        path: path.into(),
        max_bytes: 1 << 20,
    }
}

fn zip_entries(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data)).expect("a zip");
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).expect("entry");
        let name = entry.name().expect("name").into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        entries.push((name, bytes));
    }
    entries.sort();
    entries
}

#[tokio::test]
async fn an_edit_round_trip_shows_paths_as_the_tools_see_them() {
    let server = start(&["--shown-as", "/workspace"]).await;
    let created: EditorOutcome = server
        .call(edit(EditorCommand::Create {
            path: "/workspace/src/a.py".into(),
            file_text: "x = 1\ny = 2\n".into(),
        }))
        .await
        .expect("create");
    assert_eq!(created.path, "/workspace/src/a.py");
    assert!(!created.prev_exist);
    let real = server.ws.join("src/a.py");
    assert_eq!(
        std::fs::read_to_string(&real).expect("on disk"),
        "x = 1\ny = 2\n"
    );
    let replaced: EditorOutcome = server
        .call(edit(EditorCommand::StrReplace {
            path: "src/a.py".into(),
            old_str: "y = 2".into(),
            new_str: "y = 3".into(),
        }))
        .await
        .expect("str_replace");
    assert!(
        replaced
            .output
            .contains("The file /workspace/src/a.py has been edited")
    );
    assert!(
        replaced
            .diff
            .as_deref()
            .unwrap_or_default()
            .contains("+y = 3")
    );
    let (code, message) = server
        .failure(edit(EditorCommand::StrReplace {
            path: "src/a.py".into(),
            old_str: "nowhere".into(),
            new_str: "x".into(),
        }))
        .await;
    assert_eq!(code, FailureCode::EditFailed);
    assert!(
        message.contains("no occurrence of old_str `nowhere`"),
        "{message}"
    );
    let _: EditorOutcome = server
        .call(edit(EditorCommand::UndoEdit {
            path: "src/a.py".into(),
        }))
        .await
        .expect("undo");
    assert_eq!(
        std::fs::read_to_string(&real).expect("on disk"),
        "x = 1\ny = 2\n"
    );
    let viewed: EditorOutcome = server
        .call(edit(EditorCommand::View {
            path: "src/a.py".into(),
            view_range: Some((2, -1)),
        }))
        .await
        .expect("view");
    assert!(
        viewed.output.ends_with("     2\ty = 2"),
        "{}",
        viewed.output
    );
    let (code, _) = server
        .failure(edit(EditorCommand::Create {
            path: "src/a.py".into(),
            file_text: "again".into(),
        }))
        .await;
    assert_eq!(code, FailureCode::AlreadyExists);
}

#[tokio::test]
async fn list_read_upload_and_zip_work_on_the_workspace() {
    let server = start(&[]).await;
    let ws = &server.ws;
    repo_with(
        ws,
        &[
            ("src/main.rs", "fn main() {}\n"),
            (".gitignore", "target/\n*.log\n"),
            ("README.md", "# hi\n"),
        ],
    );
    std::fs::create_dir_all(ws.join("target/debug")).expect("mkdir");
    std::fs::create_dir_all(ws.join("node_modules/x")).expect("mkdir");
    std::fs::write(ws.join("debug.log"), "noise").expect("write");
    std::fs::write(ws.join(".env"), "X=1").expect("write");

    let top: Vec<String> = server.call(list("")).await.expect("list");
    assert_eq!(top, ["src/", ".env", ".gitignore", "README.md"]);
    let src: Vec<String> = server.call(list("src")).await.expect("list src");
    assert_eq!(src, ["src/main.rs"]);
    assert_eq!(server.failure(list("nope")).await.0, FailureCode::NotFound);

    let content: FileContent = server.call(read("src/main.rs")).await.expect("read");
    assert_eq!(content.data, b"fn main() {}\n");
    let small = Request::ReadFile {
        path: "src/main.rs".into(),
        max_bytes: 3,
    };
    assert_eq!(server.failure(small).await.0, FailureCode::TooLarge);
    assert_eq!(
        server.failure(read("missing.txt")).await.0,
        FailureCode::NotFound
    );
    assert_eq!(
        server.failure(read("src")).await.0,
        FailureCode::IsDirectory
    );

    let written: WriteReply = server
        .call(Request::WriteFile {
            name: "notes.txt".into(),
            data: vec![0, 1, 2, 255],
        })
        .await
        .expect("upload");
    assert_eq!(written.path, ws.join("notes.txt").display().to_string());
    assert_eq!(
        std::fs::read(ws.join("notes.txt")).expect("on disk"),
        [0, 1, 2, 255]
    );
    let _: WriteReply = server
        .call(Request::WriteFile {
            name: "notes.txt".into(),
            data: b"replaced".to_vec(),
        })
        .await
        .expect("a regular file is replaced");
    assert_eq!(
        std::fs::read(ws.join("notes.txt")).expect("on disk"),
        b"replaced"
    );
    for name in ["src/x.txt", "..", "", "../escape.txt"] {
        let (code, _) = server
            .failure(Request::WriteFile {
                name: name.into(),
                data: b"x".to_vec(),
            })
            .await;
        assert_eq!(code, FailureCode::InvalidPath, "{name:?}");
    }

    let archive: ZipReply = server
        .call(Request::Zip { max_bytes: 1 << 20 })
        .await
        .expect("zip");
    let entries = zip_entries(&archive.data);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.contains(&"src/main.rs") && names.contains(&"notes.txt"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with(".git/")), "{names:?}");
    let tiny = Request::Zip { max_bytes: 100 };
    assert_eq!(server.failure(tiny).await.0, FailureCode::TooLarge);
}

#[tokio::test]
async fn an_upload_onto_a_planted_symlink_writes_nothing_outside() {
    let server = start(&[]).await;
    let planted = server.outside.join("planted.txt");
    // A dangling link (its target does not exist yet) and one to an existing file.
    symlink(&planted, server.ws.join("evil.txt")).expect("symlink");
    symlink(
        server.outside.join("secret.txt"),
        server.ws.join("evil2.txt"),
    )
    .expect("symlink");
    for name in ["evil.txt", "evil2.txt"] {
        let (code, message) = server
            .failure(Request::WriteFile {
                name: name.into(),
                data: b"pwned".to_vec(),
            })
            .await;
        assert_eq!(code, FailureCode::InvalidPath, "{message}");
        assert!(
            std::fs::symlink_metadata(server.ws.join(name))
                .expect("still there")
                .file_type()
                .is_symlink()
        );
    }
    assert!(!planted.exists(), "nothing was written outside");
    assert_eq!(
        std::fs::read_to_string(server.outside.join("secret.txt")).expect("secret"),
        "top secret\n"
    );
}

#[tokio::test]
async fn reads_lists_diffs_and_edits_through_symlinks_to_outside_are_refused() {
    let server = start(&[]).await;
    repo_with(&server.ws, &[("a.txt", "a\n")]);
    symlink(
        server.outside.join("secret.txt"),
        server.ws.join("leak.txt"),
    )
    .expect("symlink");
    symlink(&server.outside, server.ws.join("outdir")).expect("symlink");
    let refused = [
        read("leak.txt"),
        read("outdir/secret.txt"),
        read("../outside/secret.txt"),
        read(&server.outside.join("secret.txt").display().to_string()),
        list("outdir"),
        list(".."),
        Request::GitDiff {
            path: "leak.txt".into(),
        },
        Request::GitDiff {
            path: "outdir/secret.txt".into(),
        },
        edit(EditorCommand::View {
            path: "leak.txt".into(),
            view_range: None,
        }),
    ];
    for request in refused {
        let shown = format!("{request:?}");
        let (code, message) = server.failure(request).await;
        assert_eq!(code, FailureCode::OutsideWorkspace, "{shown}: {message}");
        assert!(!message.contains("top secret"));
    }
}

#[tokio::test]
async fn the_archive_leaves_out_symlinks_and_their_targets() {
    let server = start(&[]).await;
    std::fs::write(server.ws.join("kept.txt"), "kept").expect("write");
    symlink(
        server.outside.join("secret.txt"),
        server.ws.join("leak.txt"),
    )
    .expect("symlink");
    symlink(&server.outside, server.ws.join("outdir")).expect("symlink");
    let archive: ZipReply = server
        .call(Request::Zip { max_bytes: 1 << 20 })
        .await
        .expect("zip");
    let entries = zip_entries(&archive.data);
    assert_eq!(entries, [("kept.txt".to_owned(), b"kept".to_vec())]);
}
