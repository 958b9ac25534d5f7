use super::*;

struct Ws {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn ws() -> Ws {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("ws");
    std::fs::create_dir(&root).expect("mkdir");
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, "do not touch\n").expect("write");
    Ws {
        root: root.canonicalize().expect("canon"),
        outside,
        _tmp: tmp,
    }
}

fn create(path: &str, text: &str) -> EditorCommand {
    EditorCommand::Create {
        path: path.into(),
        file_text: text.into(),
    }
}

fn replace(path: &str, old: &str, new: &str) -> EditorCommand {
    EditorCommand::StrReplace {
        path: path.into(),
        old_str: old.into(),
        new_str: new.into(),
    }
}

fn read(ws: &Ws, rel: &str) -> String {
    std::fs::read_to_string(ws.root.join(rel)).expect("read")
}

#[tokio::test]
async fn create_then_view_with_numbers_and_range() {
    let ws = ws();
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    let out = editor
        .execute(create("src/a.txt", "one\ntwo\nthree\n"))
        .await
        .expect("create");
    assert!(!out.prev_exist);
    assert_eq!(out.new_content.as_deref(), Some("one\ntwo\nthree\n"));
    assert!(out.diff.as_deref().unwrap_or_default().contains("+two"));
    assert_eq!(read(&ws, "src/a.txt"), "one\ntwo\nthree\n");

    let view = editor
        .execute(EditorCommand::View {
            path: ws.root.join("src/a.txt").display().to_string(),
            view_range: None,
        })
        .await
        .expect("view");
    assert!(
        view.output
            .ends_with("     1\tone\n     2\ttwo\n     3\tthree"),
        "{}",
        view.output
    );
    let range = editor
        .execute(EditorCommand::View {
            path: "src/a.txt".into(),
            view_range: Some((2, -1)),
        })
        .await
        .expect("view range");
    assert!(
        range.output.ends_with("     2\ttwo\n     3\tthree"),
        "{}",
        range.output
    );
    assert!(!range.output.contains("one"));
    let bad = editor
        .execute(EditorCommand::View {
            path: "src/a.txt".into(),
            view_range: Some((3, 1)),
        })
        .await;
    assert!(matches!(bad, Err(ToolError::InvalidArgument(_))));
}

#[tokio::test]
async fn create_refuses_existing_file() {
    let ws = ws();
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    editor.execute(create("a.txt", "x")).await.expect("create");
    let again = editor.execute(create("a.txt", "y")).await;
    assert!(matches!(again, Err(ToolError::AlreadyExists { .. })));
    assert_eq!(read(&ws, "a.txt"), "x");
}

#[tokio::test]
async fn view_directory_lists_two_levels_without_hidden() {
    let ws = ws();
    std::fs::create_dir_all(ws.root.join("a/b/c")).expect("mkdir");
    std::fs::write(ws.root.join("a/b/c/deep.txt"), "").expect("write");
    std::fs::write(ws.root.join("a/file.txt"), "").expect("write");
    std::fs::create_dir(ws.root.join(".git")).expect("mkdir");
    std::fs::write(ws.root.join(".hidden"), "").expect("write");
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    let out = editor
        .execute(EditorCommand::View {
            path: ".".into(),
            view_range: None,
        })
        .await
        .expect("view dir");
    let root = ws.root.display();
    assert!(
        out.output.contains(&format!("{root}/a/\n")),
        "{}",
        out.output
    );
    assert!(out.output.contains(&format!("{root}/a/b/")));
    assert!(out.output.contains(&format!("{root}/a/file.txt")));
    assert!(!out.output.contains("deep.txt"), "third level not listed");
    assert!(!out.output.contains(".git") && !out.output.contains(".hidden"));
}

#[tokio::test]
async fn str_replace_needs_exactly_one_occurrence() {
    let ws = ws();
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    editor
        .execute(create("f.py", "a = 1\nb = 2\na = 1\n"))
        .await
        .expect("create");
    let none = editor.execute(replace("f.py", "c = 3", "x")).await;
    let err = none.expect_err("no match").to_string();
    assert!(err.contains("no occurrence"), "{err}");
    let many = editor.execute(replace("f.py", "a = 1", "x")).await;
    let err = many.expect_err("two matches").to_string();
    assert!(err.contains("2 occurrences, lines 1, 3"), "{err}");

    let out = editor
        .execute(replace("f.py", "b = 2", "b = 20\nc = 30"))
        .await
        .expect("replace");
    assert_eq!(read(&ws, "f.py"), "a = 1\nb = 20\nc = 30\na = 1\n");
    assert!(out.prev_exist);
    assert_eq!(out.old_content.as_deref(), Some("a = 1\nb = 2\na = 1\n"));
    assert!(
        out.output.contains("     2\tb = 20\n     3\tc = 30"),
        "{}",
        out.output
    );
    let diff = out.diff.expect("diff");
    assert!(
        diff.contains("-b = 2\n") && diff.contains("+b = 20\n"),
        "{diff}"
    );
}

#[tokio::test]
async fn insert_after_line_and_at_top() {
    let ws = ws();
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    editor
        .execute(create("f.txt", "one\ntwo\n"))
        .await
        .expect("create");
    let insert = |line, text: &str| EditorCommand::Insert {
        path: "f.txt".into(),
        insert_line: line,
        new_str: text.into(),
    };
    editor
        .execute(insert(1, "one and a half"))
        .await
        .expect("insert");
    editor.execute(insert(0, "zero")).await.expect("insert top");
    assert_eq!(read(&ws, "f.txt"), "zero\none\none and a half\ntwo\n");
    let out_of_range = editor.execute(insert(9, "x")).await;
    assert!(matches!(out_of_range, Err(ToolError::InvalidArgument(_))));
}

#[tokio::test]
async fn undo_walks_back_through_history() {
    let ws = ws();
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    editor
        .execute(create("u.txt", "v1\n"))
        .await
        .expect("create");
    editor
        .execute(replace("u.txt", "v1", "v2"))
        .await
        .expect("edit");
    editor
        .execute(replace("u.txt", "v2", "v3"))
        .await
        .expect("edit");
    let undo = || EditorCommand::UndoEdit {
        path: "u.txt".into(),
    };
    let out = editor.execute(undo()).await.expect("undo");
    assert_eq!(out.new_content.as_deref(), Some("v2\n"));
    assert_eq!(read(&ws, "u.txt"), "v2\n");
    editor.execute(undo()).await.expect("undo");
    assert_eq!(read(&ws, "u.txt"), "v1\n");
    editor.execute(undo()).await.expect("undo create");
    assert!(
        !ws.root.join("u.txt").exists(),
        "undoing create removes the file"
    );
    assert!(matches!(
        editor.execute(undo()).await,
        Err(ToolError::NoHistory { .. })
    ));
}

#[tokio::test]
async fn missing_files_and_directories_are_reported() {
    let ws = ws();
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    assert!(matches!(
        editor.execute(replace("nope.txt", "a", "b")).await,
        Err(ToolError::NotFound { .. })
    ));
    std::fs::create_dir(ws.root.join("d")).expect("mkdir");
    assert!(matches!(
        editor.execute(replace("d", "a", "b")).await,
        Err(ToolError::IsDirectory { .. })
    ));
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused_for_every_command() {
    let ws = ws();
    std::os::unix::fs::symlink(&ws.outside, ws.root.join("link.txt")).expect("symlink");
    let mut editor = FileEditor::new(Workspace::new(&ws.root, None).expect("workspace"));
    let outside_abs = ws.outside.display().to_string();
    let cmds = vec![
        EditorCommand::View {
            path: "../outside.txt".into(),
            view_range: None,
        },
        create(&ws.root.join("../escape.txt").display().to_string(), "x"),
        replace(&outside_abs, "do not", "did"),
        replace("link.txt", "do not", "did"),
        EditorCommand::Insert {
            path: "link.txt".into(),
            insert_line: 0,
            new_str: "x".into(),
        },
        EditorCommand::UndoEdit {
            path: outside_abs.clone(),
        },
    ];
    for cmd in cmds {
        let shown = format!("{cmd:?}");
        let result = editor.execute(cmd).await;
        assert!(
            matches!(result, Err(ToolError::OutsideWorkspace { .. })),
            "{shown}: {result:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&ws.outside).expect("read"),
        "do not touch\n"
    );
    assert!(
        !ws.root
            .parent()
            .expect("parent")
            .join("escape.txt")
            .exists()
    );
}
