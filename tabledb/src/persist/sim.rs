//! A simulated disk for tests: faults on demand, and crashes that keep only what was made
//! durable.
//!
//! Every file has its current bytes and its durable bytes (as of its last successful
//! `sync`); every directory has its current entries and its durable entries (as of its last
//! `sync_dir`). [`SimStorage::crash_image`] builds the disk a machine would find after power
//! loss: durable entries, durable bytes, and for appended files possibly a torn prefix of what
//! was written after the last sync.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::vfs::{FileBytes, Storage, WriteFile};

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The disk is full: a write stores a part of its bytes (possibly none) and fails with
    /// `ENOSPC`; a create fails.
    NoSpace,
    /// An I/O error: the operation fails without effect.
    Io,
    /// `fsync` fails: nothing new becomes durable.
    SyncFailure,
    /// The process dies: this and every later operation fail, and nothing else reaches the
    /// disk.
    Crash,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default, Clone)]
struct Dir {
    entries: BTreeMap<String, usize>,
    durable: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    dirs: BTreeMap<PathBuf, Dir>,
    /// Mutating operations so far.
    ops: u64,
    /// Inject `fault` at operation number `at`.
    plan: Option<(u64, Fault)>,
    /// Every write fails with `ENOSPC` while set.
    disk_full: bool,
    crashed: bool,
    locks: BTreeSet<PathBuf>,
    rng: u64,
}

impl State {
    fn next_rand(&mut self) -> u64 {
        let mut x = self.rng.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Counts a mutating operation and returns the fault to inject, if any.
    fn tick(&mut self) -> io::Result<Option<Fault>> {
        if self.crashed {
            return Err(crashed());
        }
        self.ops += 1;
        match self.plan {
            Some((at, Fault::Crash)) if self.ops >= at => {
                self.crashed = true;
                Err(crashed())
            }
            Some((at, fault)) if self.ops == at => Ok(Some(fault)),
            _ => Ok(None),
        }
    }

    fn split(path: &Path) -> io::Result<(PathBuf, String)> {
        let dir = path.parent().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent"))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        Ok((dir.to_path_buf(), name.to_owned()))
    }

    fn dir(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", dir.display())))
    }

    fn inode_of(&self, path: &Path) -> io::Result<usize> {
        let (dir, name) = Self::split(path)?;
        self.dirs
            .get(&dir)
            .and_then(|d| d.entries.get(&name))
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is gone")
}

fn injected(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace => io::Error::from_raw_os_error(28),
        Fault::Io | Fault::SyncFailure => io::Error::from_raw_os_error(5),
        Fault::Crash => crashed(),
    }
}

/// A simulated disk. Clones share the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

impl SimStorage {
    /// An empty disk; `seed` makes torn writes reproducible.
    pub fn new(seed: u64) -> SimStorage {
        let state = State { rng: seed | 1, ..State::default() };
        SimStorage { state: Arc::new(Mutex::new(state)) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mutating operations performed so far.
    pub fn ops(&self) -> u64 {
        self.state().ops
    }

    /// Injects `fault` at the `at`-th mutating operation from the start (a crash also stops
    /// every later one).
    pub fn inject(&self, at: u64, fault: Fault) {
        self.state().plan = Some((at, fault));
    }

    /// Makes every later write fail with `ENOSPC` until called with `false`.
    pub fn set_disk_full(&self, full: bool) {
        self.state().disk_full = full;
    }

    /// True once a simulated crash happened.
    pub fn has_crashed(&self) -> bool {
        self.state().crashed
    }

    /// The disk a machine would find after power loss now: durable directory entries, each
    /// file's durable bytes plus, when it was appended to since, a random prefix of the rest
    /// (a torn write). Locks are released.
    pub fn crash_image(&self) -> SimStorage {
        let mut state = self.state();
        let mut inodes = Vec::new();
        let mut dirs = BTreeMap::new();
        let mut mapped = BTreeMap::new();
        let dir_list: Vec<(PathBuf, Dir)> = state.dirs.iter().map(|(p, d)| (p.clone(), d.clone())).collect();
        for (path, dir) in dir_list {
            let mut entries = BTreeMap::new();
            for (name, &ino) in &dir.durable {
                let new = match mapped.get(&ino) {
                    Some(&n) => n,
                    None => {
                        let old = state.inodes[ino].clone();
                        let mut data = old.durable.clone();
                        if old.data.len() > data.len() && old.data.starts_with(&data) {
                            let extra = old.data.len() - data.len();
                            let keep = (state.next_rand() % (extra as u64 + 1)) as usize;
                            data.extend_from_slice(&old.data[old.durable.len()..old.durable.len() + keep]);
                        }
                        inodes.push(Inode { durable: data.clone(), data });
                        mapped.insert(ino, inodes.len() - 1);
                        inodes.len() - 1
                    }
                };
                entries.insert(name.clone(), new);
            }
            dirs.insert(path, Dir { durable: entries.clone(), entries });
        }
        let rng = state.next_rand();
        SimStorage { state: Arc::new(Mutex::new(State { inodes, dirs, rng, ..State::default() })) }
    }

    /// The current bytes of a file (for tests that corrupt files).
    pub fn file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        let ino = state.inode_of(path).ok()?;
        Some(state.inodes[ino].data.clone())
    }

    /// Replaces the bytes of a file, durably (for tests that corrupt files).
    pub fn set_file(&self, path: &Path, bytes: Vec<u8>) {
        let mut state = self.state();
        let ino = state.inode_of(path).expect("file exists");
        state.inodes[ino] = Inode { durable: bytes.clone(), data: bytes };
    }
}

struct SimFile {
    storage: SimStorage,
    ino: usize,
}

impl WriteFile for SimFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.storage.state();
        let fault = state.tick()?;
        if fault == Some(Fault::NoSpace) || state.disk_full {
            let keep = (state.next_rand() % (buf.len() as u64 + 1)) as usize;
            state.inodes[self.ino].data.extend_from_slice(&buf[..keep]);
            return Err(injected(Fault::NoSpace));
        }
        if let Some(f) = fault {
            return Err(injected(f));
        }
        state.inodes[self.ino].data.extend_from_slice(buf);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.storage.state();
        if let Some(f) = state.tick()? {
            return Err(injected(f));
        }
        let inode = &mut state.inodes[self.ino];
        inode.durable = inode.data.clone();
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let mut state = self.storage.state();
        if let Some(f) = state.tick()? {
            return Err(injected(f));
        }
        state.inodes[self.ino].data.resize(len as usize, 0);
        Ok(())
    }
}

struct SimLock {
    storage: SimStorage,
    dir: PathBuf,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.storage.state().locks.remove(&self.dir);
    }
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        if state.crashed {
            return Err(crashed());
        }
        for dir in path.ancestors() {
            state.dirs.entry(dir.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let mut state = self.state();
        if let Some(f) = state.tick()? {
            return Err(injected(f));
        }
        if state.disk_full {
            return Err(injected(Fault::NoSpace));
        }
        let (dir, name) = State::split(path)?;
        let existing = state.dir(&dir)?.entries.get(&name).copied();
        let ino = match existing {
            Some(ino) => {
                state.inodes[ino].data.clear();
                ino
            }
            None => {
                state.inodes.push(Inode::default());
                let ino = state.inodes.len() - 1;
                state.dir(&dir)?.entries.insert(name, ino);
                ino
            }
        };
        drop(state);
        Ok(Box::new(SimFile { storage: self.clone(), ino }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let state = self.state();
        if state.crashed {
            return Err(crashed());
        }
        let ino = state.inode_of(path)?;
        drop(state);
        Ok(Box::new(SimFile { storage: self.clone(), ino }))
    }

    fn read(&self, path: &Path) -> io::Result<FileBytes> {
        let state = self.state();
        if state.crashed {
            return Err(crashed());
        }
        let ino = state.inode_of(path)?;
        Ok(FileBytes::Owned(state.inodes[ino].data.clone()))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        if let Some(f) = state.tick()? {
            return Err(injected(f));
        }
        let (from_dir, from_name) = State::split(from)?;
        let (to_dir, to_name) = State::split(to)?;
        let ino = state
            .dir(&from_dir)?
            .entries
            .remove(&from_name)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", from.display())))?;
        state.dir(&to_dir)?.entries.insert(to_name, ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        if let Some(f) = state.tick()? {
            return Err(injected(f));
        }
        let (dir, name) = State::split(path)?;
        state
            .dir(&dir)?
            .entries
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}", path.display())))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut state = self.state();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state.dir(dir)?.entries.keys().cloned().collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        if let Some(f) = state.tick()? {
            return Err(injected(f));
        }
        let d = state.dir(dir)?;
        d.durable = d.entries.clone();
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.state();
        state.dirs.contains_key(path) || state.inode_of(path).is_ok()
    }

    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Send + Sync>> {
        let mut state = self.state();
        if !state.locks.insert(dir.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("data directory {} is in use by another process", dir.display()),
            ));
        }
        drop(state);
        Ok(Box::new(SimLock { storage: self.clone(), dir: dir.to_path_buf() }))
    }
}
