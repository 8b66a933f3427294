//! `docker-compose.yml` cannot drift from the binary: every service that
//! runs `fleet-breaker` is parsed with the CLI's own clap parser.

use clap::Parser;
use fleet_breaker::cli::{Cli, Command};
use yaml_rust2::{Yaml, YamlLoader};

fn compose() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml is readable");
    let mut docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is YAML");
    assert_eq!(docs.len(), 1, "one document");
    docs.remove(0)
}

/// The services whose command starts with `fleet-breaker`, with their
/// command lines and environments (anchors already merged by the loader).
fn fleet_breaker_services(doc: &Yaml) -> Vec<(String, Vec<String>, Yaml)> {
    let services = doc["services"].as_hash().expect("a services map");
    services
        .iter()
        .filter_map(|(name, service)| {
            let command: Vec<String> = service["command"]
                .as_vec()?
                .iter()
                .map(|a| {
                    a.as_str()
                        .expect("command arguments are strings")
                        .to_owned()
                })
                .collect();
            (command.first().map(String::as_str) == Some("fleet-breaker")).then(|| {
                let name = name.as_str().unwrap().to_owned();
                (name, command, service["environment"].clone())
            })
        })
        .collect()
}

fn merged(doc: &Yaml, service: &str, key: &str) -> Yaml {
    // yaml-rust2 keeps `<<` merge keys as they are: look through them.
    let service = &doc["services"][service];
    if !service[key].is_badvalue() {
        return service[key].clone();
    }
    service["<<"][key].clone()
}

#[test]
fn every_command_line_parses_with_the_cli() {
    let doc = compose();
    let services = fleet_breaker_services(&doc);
    let names: Vec<&str> = services.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["pod-a", "pod-b", "pod-c", "dashboard"]);
    for (name, command, _) in &services {
        if let Err(error) = Cli::try_parse_from(command) {
            panic!(
                "service {name}: `{}` does not parse:\n{error}",
                command.join(" ")
            );
        }
    }
}

#[test]
fn three_demo_pods_and_one_serve_share_one_redis() {
    let doc = compose();
    let mut instances = Vec::new();
    let mut serves = 0;
    for (name, command, env) in fleet_breaker_services(&doc) {
        assert_eq!(
            env["REDIS_URL"].as_str(),
            Some("redis://redis:6379"),
            "{name} talks to the compose file's Redis"
        );
        let cli = Cli::try_parse_from(&command).unwrap();
        match cli.command {
            Command::Demo(demo) => {
                assert!(
                    demo.no_serve,
                    "{name}: the pods leave the dashboard to `serve`"
                );
                instances.push(demo.instance);
            }
            Command::Serve(serve) => {
                serves += 1;
                assert!(
                    serve.bind.starts_with("0.0.0.0:"),
                    "{name} listens beyond the container"
                );
                let token = env["FLEET_BREAKER_ADMIN_TOKEN"]
                    .as_str()
                    .unwrap_or_default();
                assert!(token.len() >= 16, "{name}: an admin token the CLI accepts");
                let port = serve.bind.rsplit(':').next().unwrap();
                let ports = merged(&doc, &name, "ports");
                let published = ports.as_vec().expect("serve publishes its port");
                assert!(
                    published
                        .iter()
                        .any(|p| p.as_str().is_some_and(|p| p.ends_with(&format!(":{port}")))),
                    "{name} publishes port {port}"
                );
            }
            other => panic!("{name}: unexpected command {other:?}"),
        }
    }
    instances.sort();
    assert_eq!(instances, ["pod-a", "pod-b", "pod-c"], "distinct pod names");
    assert_eq!(serves, 1);
    assert!(!doc["services"]["redis"].is_badvalue(), "a redis service");
}
