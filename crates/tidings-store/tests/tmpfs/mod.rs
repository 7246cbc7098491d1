//! A small real file system for tests of a full disk: a tmpfs of a given
//! size, mounted on a fresh directory, grown or shrunk with `remount`, and
//! unmounted when dropped. Mounting needs root (the test suite runs as
//! root); without it the tests that need one say so and skip.
//!
//! Shared by this crate's tests and the workspace's full-disk test.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted (and its directory removed) on drop.
pub struct Tmpfs {
    /// The mount point: a fresh directory, removed after unmounting.
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount` takes it: `4m`, `512k`) on a
    /// fresh directory. `None`, after saying why, when this process may
    /// not mount (not root).
    #[allow(clippy::print_stderr)]
    pub fn mount(size: &str) -> Option<Self> {
        if !is_root() {
            eprintln!(
                "SKIPPED: this test mounts a small tmpfs to fill it up, which needs root (the test suite runs as root)"
            );
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path =
            std::env::temp_dir().join(format!("tidings-tmpfs-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        let fs = Self { path };
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(&fs.path));
        Some(fs)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives it a new size (less than what it holds is refused by the
    /// kernel).
    pub fn resize(&self, size: &str) {
        run(Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still in use (a hub being killed): detach it now, the kernel
            // frees it once the last file closes.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn run(command: &mut Command) {
    let status = command.status().unwrap();
    assert!(status.success(), "{command:?} failed: {status}");
}
