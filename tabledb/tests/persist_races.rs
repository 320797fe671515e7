//! Checkpoints running in the background while schema changes are made: the removal of old
//! checkpoint files by one must never take the files the other is writing.
//!
//! A file system wrapper pauses a checkpoint at the exact point of each race.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tabledb::persist::{FileBytes, OsStorage, Storage, WriteFile};
use tabledb::schema::FieldDef;
use tabledb::{Config, Database, PersistOptions, Table};

/// How long a paused checkpoint or the test waits for the other side before failing.
const WAIT: Duration = Duration::from_secs(10);

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Player {
    hp: u32,
    mana: u32,
}

/// A pause: the paused side says it arrived, then waits to be let go.
struct Pause {
    arrived: SyncSender<()>,
    go: Receiver<()>,
}

impl Pause {
    fn wait(self) {
        self.arrived.send(()).expect("the test waits for the pause");
        self.go.recv_timeout(WAIT).expect("the test lets the paused checkpoint go");
    }
}

/// The OS file system, except that when armed it pauses at the fsync of the next checkpoint
/// file it creates (`at_fsync`: written, not yet named in schema.json) or at the next
/// listing of `data/` (before old files are removed).
#[derive(Default)]
struct Gated {
    at_fsync: AtomicBool,
    at_list: AtomicBool,
    pause: Mutex<Option<Pause>>,
}

impl Gated {
    /// Arms one pause; returns the test's ends of it.
    fn arm(&self, at_list: bool) -> (Receiver<()>, SyncSender<()>) {
        let (arrived, arrivals) = sync_channel(1);
        let (go_tx, go) = sync_channel(1);
        *self.pause.lock().unwrap() = Some(Pause { arrived, go });
        if at_list { &self.at_list } else { &self.at_fsync }.store(true, Ordering::SeqCst);
        (arrivals, go_tx)
    }

    fn take(&self) -> Pause {
        self.pause.lock().unwrap().take().expect("armed")
    }
}

struct GatedFile {
    inner: Box<dyn WriteFile>,
    pause: Option<Pause>,
}

impl WriteFile for GatedFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        if let Some(p) = self.pause.take() {
            p.wait();
        }
        self.inner.sync()
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
}

impl Storage for Gated {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsStorage.create_dir_all(path)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let inner = OsStorage.create(path)?;
        let checkpoint = path.extension().is_some_and(|e| e == "bin");
        let pause = (checkpoint && self.at_fsync.swap(false, Ordering::SeqCst)).then(|| self.take());
        Ok(Box::new(GatedFile { inner, pause }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        OsStorage.open_append(path)
    }
    fn read(&self, path: &Path) -> io::Result<FileBytes> {
        OsStorage.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        OsStorage.remove(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        if dir.ends_with("data") && self.at_list.swap(false, Ordering::SeqCst) {
            self.take().wait();
        }
        OsStorage.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        OsStorage.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        OsStorage.exists(path)
    }
    fn lock(&self, dir: &Path) -> io::Result<Box<dyn Send + Sync>> {
        OsStorage.lock(dir)
    }
}

/// Runs a background checkpoint of ten players, paused where `at_list` says, makes the schema
/// change `change` during the pause, lets the checkpoint finish, and checks that the directory
/// reopens with everything.
fn race(at_list: bool, change: impl FnOnce(&Database)) {
    let dir = tempfile::tempdir().unwrap();
    let gated = Arc::new(Gated::default());
    {
        let options = PersistOptions { storage: gated.clone(), ..PersistOptions::default() };
        let db = Database::open_with(dir.path(), Config::default(), options).unwrap();
        let t = db.create_table::<Player>().unwrap();
        for i in 0..10 {
            db.insert(t, &Player { hp: i, mana: i }).unwrap();
        }
        let (arrivals, go) = gated.arm(at_list);
        let checkpoint = db.checkpoint_in_background();
        arrivals.recv_timeout(WAIT).expect("the checkpoint reaches the pause");
        change(&db);
        go.send(()).unwrap();
        assert!(checkpoint.join().expect("checkpoint thread").expect("checkpoint"));
    }
    let db = Database::open(dir.path()).expect("the directory reopens");
    assert_eq!(db.snapshot().len("player").unwrap(), 10);
}

#[test]
fn a_schema_change_keeps_the_files_of_a_checkpoint_not_yet_named() {
    race(false, |db| {
        db.create_table_from_defs("other", &[FieldDef::new("a", "u32")]).unwrap();
    });
}

#[test]
fn a_checkpoint_cleaning_up_keeps_the_files_a_schema_change_wrote_meanwhile() {
    race(true, |db| {
        db.add_field("player", &FieldDef::new("level", "u16")).unwrap();
    });
}
