//! Shell completion scripts: clap's, taught what it cannot know from the
//! argument definitions alone. --fail-on, --select and --fields take
//! comma-separated lists (each word completes after the last comma), -i takes
//! an interface name of this machine (looked up when completing), and --select's
//! key=value words complete across bash's break at `=`.

use clap_complete::Shell;
use std::io::{self, Write};

/// The severities some finding code has, least first: those `--fail-on` takes
/// (a severity no finding has would never match, so it is refused).
pub fn severities_in_use() -> Vec<crate::record::Severity> {
    use crate::record::{Code, Severity};
    Severity::ALL
        .iter()
        .copied()
        .filter(|s| Code::ALL.iter().any(|c| c.severity() == *s))
        .collect()
}

/// The words `--fail-on` takes: severities, then finding codes.
pub fn fail_on_words() -> Vec<String> {
    let sevs = severities_in_use().into_iter().map(|s| s.as_str());
    let codes = crate::record::Code::ALL.iter().map(|c| c.as_str());
    sevs.chain(codes).map(str::to_string).collect()
}

/// The words `--select` takes: those of `--fail-on`, each `encryption=` value,
/// and the other keys.
pub fn select_words() -> Vec<String> {
    let mut v = fail_on_words();
    v.extend(
        crate::output::select::ENCRYPTIONS
            .iter()
            .map(|e| format!("encryption={}", e.as_str())),
    );
    v.extend(
        crate::output::select::KEYS
            .iter()
            .filter(|k| **k != "encryption=")
            .map(|k| k.to_string()),
    );
    v
}

/// The fields `--fields` names (flow lines, then those only server lines have).
pub fn field_words() -> Vec<String> {
    let mut v: Vec<String> = crate::output::tsv::FLOW_FIELDS
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    for f in crate::output::tsv::SERVER_FIELDS {
        if !v.iter().any(|n| n == f.name) {
            v.push(f.name.to_string());
        }
    }
    v
}

/// The bash part added after clap's script: list-aware completion for the three
/// list options and interface names for -i, else clap's own function.
const BASH: &str = r#"
# Added by tlswatch: the list options complete each comma-separated word, -i
# completes this machine's interfaces; anything else goes to _tlswatch above.
_tlswatch_interfaces() {
    local d
    for d in /sys/class/net/*; do
        [[ -e "$d" ]] && printf '%s\n' "${d##*/}"
    done
    printf 'any\n'
}

_tlswatch_lists() {
    local line="${COMP_LINE:0:COMP_POINT}" cur="" prev=""
    local -a w
    read -r -a w <<< "$line"
    local n=${#w[@]}
    if [[ -z "$line" || "$line" == *[[:space:]] ]]; then
        (( n > 0 )) && prev="${w[n-1]}"
    else
        (( n > 0 )) && cur="${w[n-1]}"
        (( n > 1 )) && prev="${w[n-2]}"
    fi
    local opt="$prev" val="$cur" lead=""
    if [[ "$cur" == --*=* ]]; then
        opt="${cur%%=*}"
        val="${cur#*=}"
        lead="$opt="
    fi
    local words list=1
    case "$opt" in
        --fail-on) words="$_tlswatch_fail_on" ;;
        --select) words="$_tlswatch_select" ;;
        --fields) words="$_tlswatch_fields" ;;
        -i|--interface) words="$(_tlswatch_interfaces)"; list=0 ;;
        *) _tlswatch "$@"; return ;;
    esac
    local head=""
    if (( list )) && [[ "$val" == *,* ]]; then
        head="${val%,*},"
        val="${val##*,}"
    fi
    # Bash replaces only the part of the word after its last break character
    # (= and : among them): leave what comes before it out of each candidate.
    local tail="${2-}" wb="${COMP_WORDBREAKS//[[:space:]]/}"
    if [[ "$cur" != *"$tail" ]]; then
        tail="$cur"
        [[ -n "$wb" ]] && tail="${cur##*[$wb]}"
    fi
    local keep=$(( ${#cur} - ${#tail} )) c
    COMPREPLY=()
    while IFS= read -r c; do
        [[ -n "$c" ]] && c="$lead$head$c" && COMPREPLY+=("${c:keep}")
    done < <(compgen -W "$words" -- "$val")
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _tlswatch_lists -o nosort -o bashdefault -o default tlswatch
else
    complete -F _tlswatch_lists -o bashdefault -o default tlswatch
fi
"#;

/// The words of one list option as a shell variable assignment.
fn bash_words(name: &str, words: &[String]) -> String {
    format!("_tlswatch_{name}='{}'\n", words.join(" "))
}

/// Zsh: adds list words as `_sequence` asks (the separator after each, so the
/// next word can follow), except the `KEY=` words of `--select`, which take a
/// value next: no separator after those.
const ZSH_LIST_WORDS: &str = r#"
(( $+functions[_tlswatch_list_words] )) ||
_tlswatch_list_words() {
    local -a o s keys plain
    local ret=1
    zparseopts -D -- J+:=o V+:=o X+:=o x+:=o M+:=o o+:=o 1=o 2=o F:=o P:=o p:=o \
        i:=o I:=o S:=s q=s r:=s R:=s
    [[ $1 == - ]] && shift
    keys=("${(@M)@:#*=}")
    plain=("${(@)@:#*=}")
    (( $#plain )) && compadd "${o[@]}" "${s[@]}" - "${plain[@]}" && ret=0
    (( $#keys )) && compadd "${o[@]}" -S '' - "${keys[@]}" && ret=0
    return ret
}
"#;

/// The line of clap's zsh script that runs or registers `_tlswatch`: the helper
/// above goes before it.
const ZSH_TAIL: &str = "if [ \"$funcstack[1]\" = \"_tlswatch\" ]";

/// Zsh: each list option's words through `_sequence` (comma-separated), and the
/// interfaces for -i.
fn zsh(script: &str) -> String {
    let mut out = String::with_capacity(script.len() + 256 + ZSH_LIST_WORDS.len());
    for line in script.lines() {
        if line.starts_with(ZSH_TAIL) {
            out.push_str(ZSH_LIST_WORDS.trim_start());
            out.push('\n');
        }
        let list = ["--fail-on=", "--select=", "--fields="]
            .iter()
            .any(|o| line.starts_with(&format!("'*{o}")));
        let line = if list {
            // `:NAME,...:(a b c)' \` becomes `:NAME,...:_sequence _tlswatch_list_words - a b c' \`.
            match (line.rfind(":("), line.rfind(")'")) {
                (Some(open), Some(close)) if open < close => format!(
                    "{}:_sequence _tlswatch_list_words - {}{}",
                    line.get(..open).unwrap_or(""),
                    line.get(open + 2..close).unwrap_or(""),
                    line.get(close + 1..).unwrap_or("")
                ),
                _ => line.to_string(),
            }
        } else if line.starts_with("'-i+") || line.starts_with("'--interface=") {
            line.replace(":IFACE:_default'", ":IFACE:_net_interfaces'")
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Fish: each list option's words through `__fish_complete_list`, and the
/// interfaces for -i.
fn fish_extra() -> String {
    let mut out = String::from(
        "\n# Added by tlswatch: comma-separated lists, and this machine's interfaces for -i.\n\
         complete -c tlswatch -s i -l interface -x -a '(__fish_print_interfaces; echo any)'\n",
    );
    for (opt, words) in [
        ("fail-on", fail_on_words()),
        ("select", select_words()),
        ("fields", field_words()),
    ] {
        let fun = format!("__tlswatch_{}", opt.replace('-', "_"));
        out.push_str(&format!(
            "function {fun}\n    printf '%s\\n' {}\nend\ncomplete -c tlswatch -l {opt} -x -a '(__fish_complete_list , {fun})'\n",
            words.join(" ")
        ));
    }
    out
}

/// Writes the completion script for `shell`.
pub fn script(shell: Shell, mut cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "tlswatch", &mut buf);
    let text = String::from_utf8_lossy(&buf);
    match shell {
        Shell::Bash => {
            out.write_all(text.as_bytes())?;
            out.write_all(bash_words("fail_on", &fail_on_words()).as_bytes())?;
            out.write_all(bash_words("select", &select_words()).as_bytes())?;
            out.write_all(bash_words("fields", &field_words()).as_bytes())?;
            out.write_all(BASH.as_bytes())
        }
        Shell::Zsh => out.write_all(zsh(&text).as_bytes()),
        Shell::Fish => {
            out.write_all(text.as_bytes())?;
            out.write_all(fish_extra().as_bytes())
        }
        _ => out.write_all(text.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Args;
    use super::*;
    use clap::CommandFactory;

    fn generated(shell: Shell) -> String {
        let mut out = Vec::new();
        script(shell, Args::command(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn zsh_completes_lists_word_by_word_and_interfaces() {
        let z = generated(Shell::Zsh);
        let line = |opt: &str| {
            z.lines()
                .find(|l| l.starts_with(&format!("'*--{opt}=")))
                .unwrap_or_default()
                .to_string()
        };
        for opt in ["fail-on", "select", "fields"] {
            assert!(
                line(opt).contains(":_sequence _tlswatch_list_words - "),
                "{}",
                line(opt)
            );
            assert!(line(opt).ends_with("' \\"), "{}", line(opt));
        }
        assert!(line("fail-on").contains(" CERT_EXPIRED "));
        assert!(line("select").contains(" encryption=plaintext "));
        assert!(z.contains(":IFACE:_net_interfaces'"));
        assert!(!z.contains(":IFACE:_default'"));
        // The helper is defined once, before the script runs or registers `_tlswatch`.
        let helper = z.find("_tlswatch_list_words() {").unwrap_or(usize::MAX);
        let tail = z.find(ZSH_TAIL).unwrap_or(0);
        assert!(helper < tail, "{z}");
        assert_eq!(z.matches("_tlswatch_list_words() {").count(), 1);
    }

    #[test]
    fn fish_completes_lists_and_interfaces() {
        let f = generated(Shell::Fish);
        assert!(f.contains("-l fail-on -x -a '(__fish_complete_list , __tlswatch_fail_on)'"));
        assert!(f.contains("__fish_print_interfaces"));
        assert!(f.contains(" STARTTLS_STRIPPED "));
    }
}
