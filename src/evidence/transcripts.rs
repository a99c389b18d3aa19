//! `--transcript`: which flows are transcribed, by id or as `--select` chooses
//! them (`--transcript selected`).

use crate::record::FlowRecord;

/// `--transcript`: flows by id, and whether every flow `--select` chooses is
/// transcribed too (`--transcript selected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcripts {
    pub ids: Vec<u64>,
    pub selected: bool,
}

impl Transcripts {
    /// `ID` or `selected`, repeated or comma-separated.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut out = Transcripts::default();
        for item in items {
            match item.as_ref().trim() {
                "" => {}
                "selected" => out.selected = true,
                w => out.ids.push(w.parse().map_err(|_| {
                    format!("--transcript: '{w}' is neither a flow id nor 'selected'")
                })?),
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && !self.selected
    }

    /// Whether flow `rec`, selected or not (`selected`), is to be transcribed.
    pub fn wants(&self, rec: &FlowRecord, selected: bool) -> bool {
        self.ids.contains(&rec.id) || (self.selected && selected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_selected_parse_and_other_words_are_errors() {
        let t = Transcripts::parse(&["7", "selected", "12"]).unwrap();
        assert_eq!(t.ids, vec![7, 12]);
        assert!(t.selected && !t.is_empty());
        assert!(Transcripts::parse::<&str>(&[]).unwrap().is_empty());
        let e = Transcripts::parse(&["seven"]).unwrap_err();
        assert!(e.starts_with("--transcript: 'seven'"), "{e}");
    }
}
