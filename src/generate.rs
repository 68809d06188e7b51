//! `nsxdp generate`: the manual pages (clap_mangen) and the shell completions
//! (clap_complete), both made from the command line's clap definition in `main.rs`, so they
//! say what `--help` says. Packaging runs it (`scripts/build-deb.sh`). It reads nothing but
//! its arguments and writes only into the directory it is given.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use super::{Cli, GenerateCmd};

pub(crate) fn run(what: GenerateCmd) -> anyhow::Result<ExitCode> {
    let written = match what {
        GenerateCmd::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            let mut cmd = without_help_subcommands(Cli::command());
            // Names the pages of subcommands (nsxdp-ctl-status) and adds --help/--version.
            cmd.build();
            let mut written = Vec::new();
            man_pages(&cmd, &dir, &mut written).with_context(|| format!("{}", dir.display()))?;
            written
        }
        GenerateCmd::Completions { shell, dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            let path = clap_complete::generate_to(shell, &mut Cli::command(), "nsxdp", &dir)
                .with_context(|| format!("{}", dir.display()))?;
            vec![path]
        }
    };
    for path in written {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `cmd` without clap's `help` subcommands (`nsxdp help`, `nsxdp ctl help`): a page of
/// their own would say nothing, and a page listing them would point at pages that do not
/// exist. `--help` stays.
fn without_help_subcommands(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    names.iter().fold(cmd.disable_help_subcommand(true), |cmd, name| cmd.mut_subcommand(name, without_help_subcommands))
}

/// Writes the page of `cmd` and of each of its subcommands that is not hidden, depth first.
fn man_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, dir, written)?;
    }
    let man =
        clap_mangen::Man::new(cmd.clone()).manual("nsxdp manual").source(concat!("nsxdp ", env!("CARGO_PKG_VERSION")));
    written.push(man.generate_to(dir)?);
    Ok(())
}
