//! Relations checked at commit: the check sees the tables as the commit will leave them (the
//! latest committed state, with every commit since the transaction started, and the
//! transaction's writes on top), and covers whole-table updates (`par_update`) of both sides.

use tabledb::{Database, Error, RecordId, Snapshot, Table, TableRef};

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Parent {
    n: u64,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Child {
    parent: u64,
    n: u64,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Owner {
    code: u64,
    n: u64,
}

#[derive(Table, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Pet {
    owner_code: u64,
    n: u64,
}

fn family() -> (Database, TableRef<Parent>, TableRef<Child>) {
    let db = Database::new();
    let parents = db.create_table::<Parent>().unwrap();
    let children = db.create_table::<Child>().unwrap();
    db.create_relation(Some("child_parent"), "child", "parent", "parent", "id").unwrap();
    (db, parents, children)
}

fn kennel() -> (Database, TableRef<Owner>, TableRef<Pet>) {
    let db = Database::new();
    let owners = db.create_table::<Owner>().unwrap();
    let pets = db.create_table::<Pet>().unwrap();
    db.create_relation(Some("pet_owner"), "pet", "owner_code", "owner", "code").unwrap();
    (db, owners, pets)
}

/// Asserts a constraint error of `relation` whose detail mentions every one of `words`.
fn assert_refused<T: std::fmt::Debug>(result: tabledb::Result<T>, relation: &str, words: &[&str]) {
    match result {
        Err(Error::Constraint { relation: r, detail, .. }) => {
            assert_eq!(r, relation, "{detail}");
            for w in words {
                assert!(detail.contains(w), "`{w}` not in: {detail}");
            }
        }
        other => panic!("expected a constraint violation of {relation}, got {other:?}"),
    }
}

fn no_dangling_children(snap: &Snapshot, parents: TableRef<Parent>, children: TableRef<Child>) {
    let dangling: Vec<_> = snap
        .table(children)
        .unwrap()
        .iter()
        .filter(|(_, c)| c.parent != 0 && snap.get(parents, RecordId(c.parent)).is_none())
        .map(|(id, c)| (id, c.parent))
        .collect();
    assert!(dangling.is_empty(), "children referring to missing parents: {dangling:?}");
}

fn no_dangling_pets(snap: &Snapshot, owners: TableRef<Owner>, pets: TableRef<Pet>) {
    let codes: Vec<u64> = snap.table(owners).unwrap().iter().map(|(_, o)| o.code).collect();
    let dangling: Vec<_> = snap
        .table(pets)
        .unwrap()
        .iter()
        .filter(|(_, p)| !codes.contains(&p.owner_code))
        .map(|(id, p)| (id, p.owner_code))
        .collect();
    assert!(dangling.is_empty(), "pets referring to missing owner codes {dangling:?}; codes {codes:?}");
}

// ---- Bug 1: the check must see commits made since the transaction started. ----

/// A transaction inserts a child of parent 1 (and writes to the parent table), while another
/// commit deletes parent 1: the transaction's reference would dangle.
#[test]
fn new_reference_to_target_deleted_by_concurrent_commit_is_refused() {
    let (db, parents, children) = family();
    let p1 = db.insert(parents, &Parent { n: 1 }).unwrap();
    let p2 = db.insert(parents, &Parent { n: 2 }).unwrap();

    let mut tx = db.begin();
    tx.insert(children, &Child { parent: p1.0, n: 0 }).unwrap();
    tx.set(parents, p2, Parent::N, 20).unwrap();
    db.delete(parents, p1).unwrap(); // no child refers to p1 yet
    let before = db.snapshot();
    assert_refused(tx.commit(), "child_parent", &[&format!("id {p1}"), "`child`", "`parent`"]);

    let snap = db.snapshot();
    assert_eq!(snap.seq(), before.seq(), "a refused commit changes nothing");
    assert_eq!(snap.get(parents, p2).unwrap().n, 2);
    assert_eq!(snap.table(children).unwrap().iter().count(), 0);
    no_dangling_children(&snap, parents, children);
}

/// A transaction deletes parent 1 (and blindly writes another child), while another commit
/// points an existing child at parent 1: the delete would leave that child dangling.
#[test]
fn delete_of_target_referenced_by_concurrent_commit_is_refused() {
    let (db, parents, children) = family();
    let p1 = db.insert(parents, &Parent { n: 1 }).unwrap();
    let c1 = db.insert(children, &Child { parent: 0, n: 0 }).unwrap();
    let c2 = db.insert(children, &Child { parent: 0, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.delete(parents, p1).unwrap();
    tx.set(children, c2, Child::N, 5).unwrap();
    db.set(children, c1, Child::PARENT, p1.0).unwrap(); // p1 exists: valid
    let before = db.snapshot();
    assert_refused(tx.commit(), "child_parent", &[&format!("record {c1}"), &format!("id {p1}")]);

    let snap = db.snapshot();
    assert_eq!(snap.seq(), before.seq(), "a refused commit changes nothing");
    assert!(snap.get(parents, p1).is_some());
    assert_eq!(snap.get(children, c2).unwrap().n, 0);
    no_dangling_children(&snap, parents, children);
}

/// The same as the first, for a relation by key: another commit changes the key the
/// transaction's new pet refers to.
#[test]
fn new_reference_to_key_changed_by_concurrent_commit_is_refused() {
    let (db, owners, pets) = kennel();
    let o1 = db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    let o2 = db.insert(owners, &Owner { code: 2, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.insert(pets, &Pet { owner_code: 1, n: 0 }).unwrap();
    tx.set(owners, o2, Owner::N, 7).unwrap();
    db.set(owners, o1, Owner::CODE, 10).unwrap(); // no pet refers to code 1 yet
    assert_refused(tx.commit(), "pet_owner", &["`pet`", "`owner`"]);

    let snap = db.snapshot();
    assert_eq!(snap.table(pets).unwrap().iter().count(), 0);
    assert_eq!(snap.get(owners, o2).unwrap().n, 0);
    no_dangling_pets(&snap, owners, pets);
}

/// The same as the second, for a relation by key: the transaction changes owner 1's code
/// while another commit points a pet at that code.
#[test]
fn key_change_of_target_referenced_by_concurrent_commit_is_refused() {
    let (db, owners, pets) = kennel();
    let o1 = db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    db.insert(owners, &Owner { code: 3, n: 0 }).unwrap();
    let pet1 = db.insert(pets, &Pet { owner_code: 3, n: 0 }).unwrap();
    let pet2 = db.insert(pets, &Pet { owner_code: 3, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.set(owners, o1, Owner::CODE, 2).unwrap();
    tx.set(pets, pet2, Pet::N, 5).unwrap();
    db.set(pets, pet1, Pet::OWNER_CODE, 1).unwrap(); // code 1 exists: valid
    assert_refused(tx.commit(), "pet_owner", &[&format!("record {pet1}")]);

    let snap = db.snapshot();
    assert_eq!(snap.get(owners, o1).unwrap().code, 1);
    assert_eq!(snap.get(pets, pet2).unwrap().n, 0);
    no_dangling_pets(&snap, owners, pets);
}

/// Commits made since the transaction started that do not break the relation do not stop
/// it, including ones that create the very target the transaction refers to.
#[test]
fn concurrent_commits_that_keep_the_relation_let_the_transaction_commit() {
    let (db, parents, children) = family();
    let p1 = db.insert(parents, &Parent { n: 1 }).unwrap();
    let p2 = db.insert(parents, &Parent { n: 2 }).unwrap();
    let p3 = db.insert(parents, &Parent { n: 3 }).unwrap();
    let c1 = db.insert(children, &Child { parent: p1.0, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.set(parents, p2, Parent::N, 20).unwrap();
    let mine = tx.insert(children, &Child { parent: p1.0, n: 1 }).unwrap();
    // Meanwhile: an unreferenced parent goes, a new one comes, a child moves to p2.
    db.delete(parents, p3).unwrap();
    let p4 = db.insert(parents, &Parent { n: 4 }).unwrap();
    db.set(children, c1, Child::PARENT, p2.0).unwrap();
    // The transaction refers to the parent created after it started.
    let later = tx.insert(children, &Child { parent: p4.0, n: 2 }).unwrap();
    tx.commit().unwrap();

    let snap = db.snapshot();
    assert_eq!(snap.get(children, mine).unwrap().parent, p1.0);
    assert_eq!(snap.get(children, later).unwrap().parent, p4.0);
    assert_eq!(snap.get(parents, p2).unwrap().n, 20);
    no_dangling_children(&snap, parents, children);

    // By key: another commit creates code 5, the transaction refers to it and also deletes
    // code 1, whose only pet another commit moved away.
    let (db, owners, pets) = kennel();
    let o1 = db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    db.insert(owners, &Owner { code: 2, n: 0 }).unwrap();
    let pet = db.insert(pets, &Pet { owner_code: 1, n: 0 }).unwrap();
    let mut tx = db.begin();
    tx.delete(owners, o1).unwrap();
    db.insert(owners, &Owner { code: 5, n: 0 }).unwrap();
    db.set(pets, pet, Pet::OWNER_CODE, 2).unwrap();
    let new_pet = tx.insert(pets, &Pet { owner_code: 5, n: 0 }).unwrap();
    tx.commit().unwrap();
    let snap = db.snapshot();
    assert!(snap.get(owners, o1).is_none());
    assert_eq!(snap.get(pets, new_pet).unwrap().owner_code, 5);
    no_dangling_pets(&snap, owners, pets);
}

/// In a commit group each transaction is checked against the state the ones before it
/// leave.
#[test]
fn commit_group_checks_each_transaction_after_the_ones_before_it() {
    let (db, parents, children) = family();
    let p1 = db.insert(parents, &Parent { n: 1 }).unwrap();
    let p2 = db.insert(parents, &Parent { n: 2 }).unwrap();
    let mut deleter = db.begin();
    deleter.delete(parents, p1).unwrap();
    let mut referrer = db.begin();
    referrer.insert(children, &Child { parent: p1.0, n: 0 }).unwrap();
    referrer.set(parents, p2, Parent::N, 20).unwrap();
    let (results, rest) = db.commit_group(vec![deleter, referrer]);
    assert!(rest.is_empty());
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(matches!(results[1], Err(Error::Constraint { .. })), "{:?}", results[1]);
    let snap = db.snapshot();
    assert!(snap.get(parents, p1).is_none());
    assert_eq!(snap.get(parents, p2).unwrap().n, 2);
    no_dangling_children(&snap, parents, children);
}

// ---- Bug 2: whole-table updates of the target change keys too. ----

/// A parallel update that changes every owner's code removes code 1, which a pet refers to.
#[test]
fn par_update_changing_referenced_keys_is_refused() {
    let (db, owners, pets) = kennel();
    let o1 = db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    db.insert(owners, &Owner { code: 2, n: 0 }).unwrap();
    let pet = db.insert(pets, &Pet { owner_code: 1, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.par_update(owners, |_, o| o.code += 100).unwrap();
    let before = db.snapshot();
    assert_refused(tx.commit(), "pet_owner", &[&format!("record {pet}"), "`owner`"]);
    let snap = db.snapshot();
    assert_eq!(snap.seq(), before.seq(), "a refused commit changes nothing");
    assert_eq!(snap.get(owners, o1).unwrap().code, 1);
    no_dangling_pets(&snap, owners, pets);

    // Also when a record-level write comes after the parallel update.
    let mut tx = db.begin();
    tx.par_update(owners, |_, o| o.code += 100).unwrap();
    tx.set(owners, o1, Owner::N, 9).unwrap();
    assert_refused(tx.commit(), "pet_owner", &[&format!("record {pet}")]);
    no_dangling_pets(&db.snapshot(), owners, pets);
}

/// Parallel updates of the target that keep every referenced key commit: one that leaves
/// the keys alone, one that swaps them between records, and one that changes keys nobody
/// refers to.
#[test]
fn par_update_keeping_referenced_keys_commits() {
    let (db, owners, pets) = kennel();
    let o1 = db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    let o2 = db.insert(owners, &Owner { code: 2, n: 0 }).unwrap();
    let o3 = db.insert(owners, &Owner { code: 3, n: 0 }).unwrap();
    db.insert(pets, &Pet { owner_code: 1, n: 0 }).unwrap();
    db.insert(pets, &Pet { owner_code: 2, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.par_update(owners, |_, o| o.n += 1).unwrap();
    tx.commit().unwrap();

    let mut tx = db.begin();
    tx.par_update(owners, |_, o| {
        o.code = match o.code {
            1 => 2,
            2 => 1,
            c => c + 100,
        }
    })
    .unwrap();
    tx.commit().unwrap();

    let snap = db.snapshot();
    let codes = [o1, o2, o3].map(|id| snap.get(owners, id).unwrap().code);
    assert_eq!(codes, [2, 1, 103]);
    assert_eq!(snap.get(owners, o3).unwrap().n, 1);
    no_dangling_pets(&snap, owners, pets);

    // A key changed by the parallel update is given back by a record-level write.
    let mut tx = db.begin();
    tx.par_update(owners, |_, o| o.code += 1000).unwrap();
    tx.set(owners, o1, Owner::CODE, 2).unwrap();
    tx.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    tx.commit().unwrap();
    no_dangling_pets(&db.snapshot(), owners, pets);
}

/// A key changed by a record-level update stays available when a record inserted by the same
/// transaction takes it.
#[test]
fn key_moved_to_a_new_record_in_the_same_transaction_commits() {
    let (db, owners, pets) = kennel();
    let o1 = db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    db.insert(pets, &Pet { owner_code: 1, n: 0 }).unwrap();
    let mut tx = db.begin();
    tx.set(owners, o1, Owner::CODE, 2).unwrap();
    let o2 = tx.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    tx.commit().unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.get(owners, o2).unwrap().code, 1);
    no_dangling_pets(&snap, owners, pets);
}

// ---- References written by whole-table updates of the source. ----

/// A parallel update of the source is checked record by record, including records the
/// transaction also wrote other fields of.
#[test]
fn par_update_of_source_writing_dangling_references_is_refused() {
    let (db, parents, children) = family();
    let p1 = db.insert(parents, &Parent { n: 1 }).unwrap();
    let c1 = db.insert(children, &Child { parent: p1.0, n: 0 }).unwrap();
    let c2 = db.insert(children, &Child { parent: p1.0, n: 0 }).unwrap();

    let mut tx = db.begin();
    tx.par_update(children, |_, c| c.parent = 99).unwrap();
    assert_refused(tx.commit(), "child_parent", &["id 99"]);

    // Only c1 is touched by the parallel update, and c1 also has a write to another field.
    let mut tx = db.begin();
    tx.par_update(children, |id, c| {
        if id == c1 {
            c.parent = 99;
        }
    })
    .unwrap();
    tx.set(children, c1, Child::N, 5).unwrap();
    assert_refused(tx.commit(), "child_parent", &[&format!("record {c1}"), "id 99"]);
    let snap = db.snapshot();
    assert_eq!(*snap.get(children, c1).unwrap(), Child { parent: p1.0, n: 0 });
    no_dangling_children(&snap, parents, children);

    // Valid references commit.
    let p2 = db.insert(parents, &Parent { n: 2 }).unwrap();
    let mut tx = db.begin();
    tx.par_update(children, |_, c| c.parent = p2.0).unwrap();
    tx.set(children, c2, Child::N, 5).unwrap();
    tx.commit().unwrap();
    let snap = db.snapshot();
    assert_eq!(snap.get(children, c2).unwrap().parent, p2.0);
    no_dangling_children(&snap, parents, children);

    // By key.
    let (db, owners, pets) = kennel();
    db.insert(owners, &Owner { code: 1, n: 0 }).unwrap();
    db.insert(pets, &Pet { owner_code: 1, n: 0 }).unwrap();
    let mut tx = db.begin();
    tx.par_update(pets, |_, p| p.owner_code = 7).unwrap();
    assert_refused(tx.commit(), "pet_owner", &["`pet`"]);
    no_dangling_pets(&db.snapshot(), owners, pets);
}
