//! The crate's layout holds: no cycle between the top-level modules of
//! `src/`, and everything that speaks Redis lives under `src/store/redis/`.
//!
//! A module "uses" another when one of its non-comment lines names
//! `crate::other`; `lib.rs` (which declares and re-exports everything) and
//! `bin/` are not modules of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path` (or `path` itself).
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).expect("a readable folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code of a file, without comment lines.
fn code_lines(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .expect("a readable source file")
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("//"))
        .map(str::to_owned)
        .collect()
}

/// Top-level module name -> its files.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(src()).expect("src/") {
        let path = entry.expect("an entry of src/").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "bin" || name == "main" {
            continue;
        }
        modules
            .entry(name)
            .or_insert_with(Vec::new)
            .extend(rust_files(&path));
    }
    modules
}

/// Module -> the other top-level modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, files)| {
            let mut uses = BTreeSet::new();
            for line in files.iter().flat_map(|f| code_lines(f)) {
                for (at, _) in line.match_indices("crate::") {
                    let rest = &line[at + "crate::".len()..];
                    let target: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if names.contains(&target) && &target != module {
                        uses.insert(target);
                    }
                }
            }
            (module.clone(), uses)
        })
        .collect()
}

/// A cycle through `start`, if any: depth-first over the graph.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let node = path.last().expect("a non-empty path").clone();
        for next in &graph[&node] {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_top_level_module_of_src_depends_on_itself_through_others() {
    let graph = graph();
    assert!(graph.contains_key("store") && graph.contains_key("breaker"));
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_from(&graph, module))
        .map(|path| path.join(" -> "))
        .collect();
    assert!(
        cycles.is_empty(),
        "cycles between top-level modules of src/ (layers: model <- store <- cache <- breaker <- router <- alerts/http <- cli):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_when_there_is_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    graph.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(
        cycle_from(&graph, "a").map(|p| p.join(" -> ")),
        Some("a -> b -> c -> a".to_owned())
    );
    assert_eq!(cycle_from(&graph, "d"), None);
}

#[test]
fn only_the_redis_store_speaks_redis() {
    let redis_home = src().join("store").join("redis");
    let mut strays = Vec::new();
    for file in rust_files(&src()) {
        if file.starts_with(&redis_home) {
            continue;
        }
        // The CLI and the service name Redis in messages and settings, and
        // build a store from a URL; what they must not do is send commands.
        let speaks = code_lines(&file).iter().any(|line| {
            line.contains("redis::cmd(")
                || line.contains("redis::Script")
                || line.contains("query_async(")
                || line.contains("redis::aio::")
        });
        if speaks {
            strays.push(file.display().to_string());
        }
    }
    assert!(
        strays.is_empty(),
        "Redis commands outside src/store/redis/: {strays:?}"
    );
}
