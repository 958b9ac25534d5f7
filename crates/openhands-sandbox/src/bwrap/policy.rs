//! The whole sandbox policy as data: namespaces, mounts, environment and the inner program.
//!
//! Everything `bwrap` is told lives in a [`SandboxPlan`], built in one function
//! ([`SandboxPlan::build`]) from the host's layout and the configuration, and turned into
//! argv by [`SandboxPlan::to_args`]. A reviewer reads the policy here at once, and tests
//! assert on the plan (nothing writable but the workspace, no host data directory, ...)
//! without starting a sandbox.

use openhands_core::sandbox_config::{NetworkMode, SandboxLimits};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The uid and gid of the sandbox's user (inside its user namespace).
pub const SANDBOX_UID: u32 = 1000;
/// Where the workspace appears inside the sandbox.
pub const WORKSPACE_IN_SANDBOX: &str = "/workspace";
/// Where the tool server binary appears inside the sandbox.
pub const TOOL_SERVER_IN_SANDBOX: &str = "/opt/openhands/tool-server";
/// The directory holding the egress proxy's socket inside the sandbox.
pub const PROXY_DIR_IN_SANDBOX: &str = "/run/openhands";
/// The egress proxy's socket inside the sandbox.
pub const PROXY_SOCKET_IN_SANDBOX: &str = "/run/openhands/proxy.sock";
/// Where the tool server listens for the sandbox's HTTP(S) clients (its side of the proxy).
pub const PROXY_LISTEN: &str = "127.0.0.1:3128";

/// Host files and directories of `/etc` that tools need (TLS roots, the dynamic linker's
/// cache, name-service and shell configuration). Bound read-only when they exist; nothing
/// else of the host's `/etc` (no `passwd`, `shadow`, `hosts`, service configurations, and
/// not `/etc/ssl/private`: the sandbox's user is the server's uid on the host, so it could
/// read files only that uid may read).
pub const ETC_ENTRIES: &[&str] = &[
    "/etc/alternatives",
    "/etc/bash.bashrc",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/gitconfig",
    "/etc/inputrc",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/pki",
    "/etc/profile",
    "/etc/protocols",
    "/etc/python3",
    "/etc/services",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/terminfo",
    "/etc/timezone",
];

/// Top-level system paths: symlinks into `/usr` on merged-/usr systems (Debian 12+), real
/// directories elsewhere.
pub const SYSTEM_PATHS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// One mount or file-system operation, in the order `bwrap` performs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A host path, read-only.
    RoBind { src: PathBuf, dest: String },
    /// A host path, read-only, skipped when it does not exist.
    RoBindTry { src: PathBuf, dest: String },
    /// A host path, writable (the workspace only).
    Bind { src: PathBuf, dest: String },
    /// A symlink created in the sandbox.
    Symlink { target: PathBuf, dest: String },
    /// An empty directory with `perms`.
    Dir { dest: String, perms: u32 },
    /// A fresh procfs of the sandbox's pid namespace.
    Proc { dest: String },
    /// A minimal `/dev` (null, zero, full, random, urandom, tty, pts, shm).
    Dev { dest: String },
    /// A tmpfs, bounded when `size` is given and bwrap supports it.
    Tmpfs { dest: String, size: Option<u64> },
    /// Makes an already mounted path read-only.
    RemountRo { dest: String },
}

/// Which optional `bwrap` options this `bwrap` understands (older releases lack some).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BwrapFeatures {
    /// `--disable-userns` (0.8.0): no nested user namespaces in the sandbox.
    pub disable_userns: bool,
    /// `--size` (0.8.0): bounded tmpfs mounts.
    pub tmpfs_size: bool,
    /// `--perms` (0.5.0).
    pub perms: bool,
}

impl BwrapFeatures {
    /// Reads the features from `bwrap --help`.
    pub fn from_help(help: &str) -> Self {
        Self {
            disable_userns: help.contains("--disable-userns"),
            tmpfs_size: help.contains("--size"),
            perms: help.contains("--perms"),
        }
    }
}

/// How the host's file system looks, read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// `/bin`, `/lib`, ...: `Some(target)` when a symlink, `None` when a directory.
    pub system_paths: Vec<(String, Option<PathBuf>)>,
    /// Synthetic `/etc/passwd`, `/etc/group` and `/etc/hosts` written by the launcher.
    pub passwd: PathBuf,
    pub group: PathBuf,
    pub hosts: PathBuf,
}

impl HostLayout {
    /// Looks at the host's `/bin`, `/lib`, ... ; the synthetic files live in `etc_dir`.
    pub fn probe(etc_dir: &Path) -> Self {
        let system_paths = SYSTEM_PATHS
            .iter()
            .filter_map(|p| match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => std::fs::read_link(p)
                    .ok()
                    .map(|t| ((*p).to_owned(), Some(t))),
                Ok(m) if m.is_dir() => Some(((*p).to_owned(), None)),
                _ => None,
            })
            .collect();
        Self {
            system_paths,
            passwd: etc_dir.join("passwd"),
            group: etc_dir.join("group"),
            hosts: etc_dir.join("hosts"),
        }
    }
}

/// The contents of the synthetic `/etc/passwd`, `/etc/group` and `/etc/hosts`: only root,
/// the sandbox user and nobody exist.
pub fn synthetic_etc() -> [(&'static str, String); 3] {
    let uid = SANDBOX_UID;
    [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/usr/sbin/nologin\n\
                 sandbox:x:{uid}:{uid}:sandbox:{WORKSPACE_IN_SANDBOX}:/bin/bash\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        (
            "group",
            format!("root:x:0:\nsandbox:x:{uid}:\nnogroup:x:65534:\n"),
        ),
        (
            "hosts",
            "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_owned(),
        ),
    ]
}

/// What varies per launch.
#[derive(Debug, Clone)]
pub struct LaunchTarget<'a> {
    /// The host workspace, bound writable at [`WORKSPACE_IN_SANDBOX`].
    pub workspace: &'a Path,
    /// The host directory bound at [`PROXY_DIR_IN_SANDBOX`] (proxy mode only).
    pub proxy_dir: &'a Path,
}

/// The complete `bwrap` invocation of one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    /// Namespace and process options (`--unshare-all`, `--cap-drop ALL`, ...).
    pub options: Vec<String>,
    /// The environment inside: `bwrap` clears everything else.
    pub env: Vec<(String, String)>,
    /// Mounts, in order.
    pub mounts: Vec<Mount>,
    /// The working directory inside.
    pub chdir: String,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

/// The proxy variables of proxy mode, for the sandbox's environment and the tools' shells.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://{PROXY_LISTEN}");
    let mut env: Vec<(String, String)> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .iter()
        .map(|k| ((*k).to_owned(), url.clone()))
        .collect();
    env.push(("NO_PROXY".into(), "localhost,127.0.0.1".into()));
    env.push(("no_proxy".into(), "localhost,127.0.0.1".into()));
    env
}

/// The tool server's command line inside the sandbox (limits of 0 are left out).
pub fn tool_server_command(limits: &SandboxLimits, mode: NetworkMode) -> Vec<OsString> {
    let mut args: Vec<String> = vec![
        TOOL_SERVER_IN_SANDBOX.into(),
        "--workspace".into(),
        WORKSPACE_IN_SANDBOX.into(),
        "--shown-as".into(),
        WORKSPACE_IN_SANDBOX.into(),
        "--seccomp".into(),
    ];
    for (flag, value) in [
        ("--rlimit-nofile", limits.open_files),
        ("--rlimit-fsize", limits.file_size_bytes),
        ("--rlimit-nproc", limits.processes),
        ("--rlimit-cpu", limits.cpu_seconds_per_process),
        ("--max-workspace-bytes", limits.workspace_bytes),
    ] {
        if value > 0 {
            args.push(flag.into());
            args.push(value.to_string());
        }
    }
    if mode == NetworkMode::Proxy {
        args.extend([
            "--proxy-socket".into(),
            PROXY_SOCKET_IN_SANDBOX.into(),
            "--proxy-listen".into(),
            PROXY_LISTEN.into(),
        ]);
    }
    args.into_iter().map(OsString::from).collect()
}

impl SandboxPlan {
    /// The policy: see the module docs of [`super`] for why each part is there.
    pub fn build(
        layout: &HostLayout,
        features: BwrapFeatures,
        limits: &SandboxLimits,
        mode: NetworkMode,
        tool_server: &Path,
        target: &LaunchTarget<'_>,
    ) -> Self {
        let uid = SANDBOX_UID.to_string();
        let mut options: Vec<String> = vec!["--unshare-all".into()];
        if mode == NetworkMode::Open {
            options.push("--share-net".into());
        }
        // `--unshare-all` only *tries* the user and cgroup namespaces; insist on them.
        options.extend(["--unshare-user".into(), "--unshare-cgroup".into()]);
        if features.disable_userns {
            options.push("--disable-userns".into());
        }
        for o in [
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            &uid,
            "--gid",
            &uid,
            "--hostname",
            "sandbox",
        ] {
            options.push(o.to_owned());
        }

        let mut env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", WORKSPACE_IN_SANDBOX),
            ("LANG", "C.UTF-8"),
            ("TERM", "xterm"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if mode == NetworkMode::Proxy {
            env.extend(proxy_env());
        }

        let mut mounts = vec![Mount::RoBind {
            src: "/usr".into(),
            dest: "/usr".into(),
        }];
        for (path, link) in &layout.system_paths {
            mounts.push(match link {
                Some(target) => Mount::Symlink {
                    target: target.clone(),
                    dest: path.clone(),
                },
                None => Mount::RoBind {
                    src: path.into(),
                    dest: path.clone(),
                },
            });
        }
        mounts.push(Mount::Dir {
            dest: "/etc".into(),
            perms: 0o755,
        });
        for entry in ETC_ENTRIES {
            mounts.push(Mount::RoBindTry {
                src: entry.into(),
                dest: (*entry).to_owned(),
            });
        }
        if mode == NetworkMode::Open {
            mounts.push(Mount::RoBindTry {
                src: "/etc/resolv.conf".into(),
                dest: "/etc/resolv.conf".into(),
            });
        }
        for (src, dest) in [
            (&layout.passwd, "/etc/passwd"),
            (&layout.group, "/etc/group"),
            (&layout.hosts, "/etc/hosts"),
        ] {
            mounts.push(Mount::RoBind {
                src: src.clone(),
                dest: dest.into(),
            });
        }
        // Memory-backed file systems are charged to the memory cgroup; the sizes bound them
        // too when no cgroup is usable.
        let scratch = (limits.memory_bytes > 0).then_some(limits.memory_bytes);
        mounts.extend([
            Mount::Proc {
                dest: "/proc".into(),
            },
            Mount::Dev {
                dest: "/dev".into(),
            },
            Mount::Tmpfs {
                dest: "/dev/shm".into(),
                size: scratch,
            },
            Mount::Tmpfs {
                dest: "/tmp".into(),
                size: scratch,
            },
            Mount::Tmpfs {
                dest: "/run".into(),
                size: Some(1 << 20),
            },
        ]);
        if mode == NetworkMode::Proxy {
            // Read-only: the sandbox can connect to the socket but not replace it.
            mounts.push(Mount::RoBind {
                src: target.proxy_dir.to_owned(),
                dest: PROXY_DIR_IN_SANDBOX.into(),
            });
        }
        mounts.push(Mount::Bind {
            src: target.workspace.to_owned(),
            dest: WORKSPACE_IN_SANDBOX.into(),
        });
        mounts.push(Mount::RoBind {
            src: tool_server.to_owned(),
            dest: TOOL_SERVER_IN_SANDBOX.into(),
        });
        // The root tmpfs (holding the mount points) becomes read-only last.
        mounts.push(Mount::RemountRo { dest: "/".into() });

        Self {
            options,
            env,
            mounts,
            chdir: WORKSPACE_IN_SANDBOX.into(),
            command: tool_server_command(limits, mode),
        }
    }

    /// Host paths the sandbox can write to (the workspace only, by construction).
    pub fn writable_host_paths(&self) -> Vec<&Path> {
        self.mounts
            .iter()
            .filter_map(|m| match m {
                Mount::Bind { src, .. } => Some(src.as_path()),
                _ => None,
            })
            .collect()
    }

    /// Every host path made visible inside.
    pub fn visible_host_paths(&self) -> Vec<&Path> {
        self.mounts
            .iter()
            .filter_map(|m| match m {
                Mount::Bind { src, .. }
                | Mount::RoBind { src, .. }
                | Mount::RoBindTry { src, .. } => Some(src.as_path()),
                _ => None,
            })
            .collect()
    }

    /// The `bwrap` arguments (after the program name).
    pub fn to_args(&self, features: BwrapFeatures) -> Vec<OsString> {
        let mut args: Vec<OsString> = self.options.iter().map(OsString::from).collect();
        let mut push = |items: &[&dyn AsRef<std::ffi::OsStr>]| {
            args.extend(items.iter().map(|i| i.as_ref().to_owned()));
        };
        push(&[&"--clearenv"]);
        for (k, v) in &self.env {
            push(&[&"--setenv", k, v]);
        }
        for mount in &self.mounts {
            match mount {
                Mount::RoBind { src, dest } => push(&[&"--ro-bind", src, dest]),
                Mount::RoBindTry { src, dest } => push(&[&"--ro-bind-try", src, dest]),
                Mount::Bind { src, dest } => push(&[&"--bind", src, dest]),
                Mount::Symlink { target, dest } => push(&[&"--symlink", target, dest]),
                Mount::Dir { dest, perms } => {
                    if features.perms {
                        push(&[&"--perms", &format!("{perms:o}")]);
                    }
                    push(&[&"--dir", dest]);
                }
                Mount::Proc { dest } => push(&[&"--proc", dest]),
                Mount::Dev { dest } => push(&[&"--dev", dest]),
                Mount::Tmpfs { dest, size } => {
                    if let (Some(size), true) = (size, features.tmpfs_size) {
                        push(&[&"--size", &size.to_string()]);
                    }
                    push(&[&"--tmpfs", dest]);
                }
                Mount::RemountRo { dest } => push(&[&"--remount-ro", dest]),
            }
        }
        push(&[&"--chdir", &self.chdir, &"--"]);
        args.extend(self.command.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(mode: NetworkMode) -> SandboxPlan {
        let layout = HostLayout {
            system_paths: vec![("/bin".into(), Some("usr/bin".into()))],
            passwd: "/rt/etc/passwd".into(),
            group: "/rt/etc/group".into(),
            hosts: "/rt/etc/hosts".into(),
        };
        let features = BwrapFeatures {
            disable_userns: true,
            tmpfs_size: true,
            perms: true,
        };
        SandboxPlan::build(
            &layout,
            features,
            &SandboxLimits::default(),
            mode,
            Path::new("/srv/bin/openhands-tool-server"),
            &LaunchTarget {
                workspace: Path::new("/data/workspaces/u1/c1"),
                proxy_dir: Path::new("/rt/c1/net"),
            },
        )
    }

    #[test]
    fn only_the_workspace_is_writable() {
        assert_eq!(
            plan(NetworkMode::Proxy).writable_host_paths(),
            vec![Path::new("/data/workspaces/u1/c1")]
        );
    }

    #[test]
    fn no_host_data_home_or_var_is_visible() {
        let p = plan(NetworkMode::Open);
        for path in p.visible_host_paths() {
            for forbidden in [
                "/root",
                "/home",
                "/var",
                "/srv/data",
                "/etc/passwd",
                "/etc/shadow",
            ] {
                assert!(!path.starts_with(forbidden), "{path:?} is visible");
            }
            assert!(
                !path.starts_with("/data") || path == Path::new("/data/workspaces/u1/c1"),
                "{path:?}"
            );
        }
    }

    #[test]
    fn the_network_follows_the_mode() {
        let proxy = plan(NetworkMode::Proxy);
        assert!(!proxy.options.contains(&"--share-net".to_owned()));
        assert!(proxy.env.iter().any(|(k, _)| k == "HTTPS_PROXY"));
        assert!(proxy.command.contains(&OsString::from("--proxy-socket")));
        let none = plan(NetworkMode::None);
        assert!(!none.options.contains(&"--share-net".to_owned()));
        assert!(!none.env.iter().any(|(k, _)| k == "HTTPS_PROXY"));
        assert!(!none.command.contains(&OsString::from("--proxy-socket")));
        assert!(
            plan(NetworkMode::Open)
                .options
                .contains(&"--share-net".to_owned())
        );
    }

    #[test]
    fn the_environment_is_cleared_and_rebuilt() {
        let args = plan(NetworkMode::None).to_args(BwrapFeatures::default());
        let clear = args.iter().position(|a| a == "--clearenv");
        let first_set = args.iter().position(|a| a == "--setenv");
        assert!(clear.is_some() && clear < first_set);
        let names: Vec<_> = plan(NetworkMode::None)
            .env
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(names, ["PATH", "HOME", "LANG", "TERM"]);
    }

    #[test]
    fn zero_limits_are_left_out_of_the_tool_server_command() {
        let limits = SandboxLimits {
            file_size_bytes: 0,
            processes: 7,
            ..SandboxLimits::default()
        };
        let cmd = tool_server_command(&limits, NetworkMode::None);
        assert!(!cmd.contains(&OsString::from("--rlimit-fsize")));
        let at = cmd.iter().position(|a| a == "--rlimit-nproc");
        assert_eq!(at.map(|i| &cmd[i + 1]), Some(&OsString::from("7")));
        assert_eq!(cmd[0], TOOL_SERVER_IN_SANDBOX);
    }

    #[test]
    fn the_command_comes_after_the_separator() {
        let args = plan(NetworkMode::Proxy).to_args(BwrapFeatures::default());
        let sep = args.iter().position(|a| a == "--").expect("separator");
        assert_eq!(args[sep + 1], TOOL_SERVER_IN_SANDBOX);
        assert_eq!(
            args.last().map(|a| a.to_string_lossy().into_owned()),
            Some(PROXY_LISTEN.into())
        );
    }
}
