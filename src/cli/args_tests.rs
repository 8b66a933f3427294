//! The help text: generated from the defaults it states, no stray `=`.

use clap::CommandFactory;

use super::Cli;
use crate::config::BreakerConfig;

/// The long help of the root command and of every subcommand.
fn every_help() -> Vec<(String, String)> {
    let mut root = Cli::command();
    root.build();
    let mut helps = vec![(
        "fleet-breaker".to_owned(),
        root.render_long_help().to_string(),
    )];
    for sub in root.get_subcommands_mut() {
        helps.push((
            sub.get_name().to_owned(),
            sub.render_long_help().to_string(),
        ));
    }
    helps
}

#[test]
fn the_config_help_states_the_defaults_of_breaker_config() {
    let d = BreakerConfig::default();
    let (_, help) = &every_help()[0];
    for expected in [
        format!("{} failures", d.failure_threshold),
        format!("{} probes", d.half_open_max_calls),
        format!("backoff {} s", d.base_backoff.as_secs()),
        format!("x{}", d.backoff_multiplier),
        format!("up to {} s", d.max_backoff.as_secs()),
    ] {
        assert!(
            help.contains(&expected),
            "{expected:?} missing from:\n{help}"
        );
    }
    assert!(!help.contains("doubling"), "{help}");
}

#[test]
fn no_env_var_is_shown_with_a_stray_equals_sign() {
    for (name, help) in every_help() {
        for line in help.lines().filter(|l| l.contains("[env: ")) {
            assert!(!line.contains("=]"), "{name}: {line}");
        }
    }
}

#[test]
fn every_env_backed_flag_hides_its_value() {
    // clap prints `[env: NAME=VALUE]` for a flag that does not hide its
    // value, and `NAME=` when the variable is unset; a secret would show.
    let mut root = Cli::command();
    root.build();
    let mut commands = vec![root.clone()];
    commands.extend(root.get_subcommands().cloned());
    for command in &commands {
        for arg in command.get_arguments().filter(|a| a.get_env().is_some()) {
            assert!(
                arg.is_hide_env_values_set(),
                "{} --{}",
                command.get_name(),
                arg.get_id()
            );
        }
    }
}

#[test]
fn serve_metrics_agents_defaults_to_not_closed_and_takes_all_or_a_number() {
    use clap::Parser;

    use super::Command;
    use crate::http::MetricsAgents;

    let parse = |extra: &[&str]| {
        let args = ["fleet-breaker", "serve"].iter().chain(extra);
        match Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(Command::Serve(serve)) => Ok(serve.metrics_agents),
            Ok(_) => panic!("not serve"),
            Err(error) => Err(error.to_string()),
        }
    };
    // Unless the environment says otherwise, as the tests' does not.
    if std::env::var_os("FLEET_BREAKER_METRICS_AGENTS").is_none() {
        assert_eq!(parse(&[]), Ok(MetricsAgents::NotClosed));
    }
    assert_eq!(parse(&["--metrics-agents", "all"]), Ok(MetricsAgents::All));
    assert_eq!(
        parse(&["--metrics-agents", "500"]),
        Ok(MetricsAgents::AtMost(
            std::num::NonZeroUsize::new(500).unwrap()
        ))
    );
    let error = parse(&["--metrics-agents", "0"]).unwrap_err();
    assert!(error.contains("not-closed, all"), "{error}");
}
