//! The README as a newcomer reads it, and the pages of docs/: code that
//! renders as written, the first steps first, links that lead somewhere.

use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The ```rust blocks of `text` (any ```rust... info string), line by line.
fn rust_blocks(text: &str) -> Vec<Vec<&str>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match current.as_mut() {
            None if line.starts_with("```rust") => current = Some(Vec::new()),
            None => {}
            Some(_) if line.starts_with("```") => blocks.extend(current.take()),
            Some(block) => block.push(line),
        }
    }
    blocks
}

const PAGES: [&str; 3] = ["README.md", "docs/reference.md", "docs/operations.md"];

#[test]
fn rust_examples_hide_no_lines_and_are_whole_programs() {
    // The README is the crate's rustdoc too: a `# ` line is hidden there but
    // shown literally where the Markdown is rendered (GitHub, crates.io).
    for page in PAGES {
        let text = read(page);
        for block in rust_blocks(&text) {
            for line in &block {
                assert!(
                    !(line.starts_with("# ") || *line == "#"),
                    "{page}: a hidden doctest line shows as written: {line:?}"
                );
            }
            assert!(
                block.iter().any(|l| l.contains("fn main(")),
                "{page}: an example that is not a whole program:\n{}",
                block.join("\n")
            );
        }
    }
}

#[test]
fn the_readme_starts_with_the_first_five_minutes() {
    let readme = read("README.md");
    let first = readme
        .lines()
        .find(|l| l.starts_with("## "))
        .expect("a section");
    assert_eq!(first, "## First five minutes");
    let start = readme.find("## First five minutes").expect("the section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    for needed in [
        "cargo run -- demo",
        "scripts/test",
        "cargo install --path .",
        "\"The original\"",
    ] {
        assert!(
            section.contains(needed),
            "{needed:?} missing from:\n{section}"
        );
    }
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "the README has {lines} lines; reference goes to docs/"
    );
}

#[test]
fn relative_links_lead_to_files_that_exist() {
    for page in PAGES {
        let text = read(page);
        let dir = Path::new(page).parent().unwrap_or(Path::new(""));
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if target.contains("://") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap_or(target);
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(file);
            assert!(path.exists(), "{page}: the link {target:?} leads nowhere");
        }
    }
}
