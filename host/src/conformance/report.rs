//! What a conformance run found, as text for people or JSON for programs.

use serde::Serialize;

/// One checked thing: a behaviour case, the limits workload or an import.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub section: &'static str,
    pub name: String,
    pub passed: bool,
    /// Why it failed, or what was measured.
    pub detail: String,
}

impl Outcome {
    pub fn pass(section: &'static str, name: impl Into<String>, detail: String) -> Outcome {
        Outcome {
            section,
            name: name.into(),
            passed: true,
            detail,
        }
    }

    pub fn fail(section: &'static str, name: impl Into<String>, detail: String) -> Outcome {
        Outcome {
            section,
            name: name.into(),
            passed: false,
            detail,
        }
    }
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn push(&mut self, outcome: Outcome) {
        self.outcomes.push(outcome);
    }

    pub fn extend(&mut self, other: Report) {
        self.outcomes.extend(other.outcomes);
    }

    pub fn passed(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| o.passed)
    }

    pub fn failed(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes.iter().filter(|o| !o.passed)
    }

    pub fn all_passed(&self) -> bool {
        !self.outcomes.is_empty() && self.failed().next().is_none()
    }

    /// The outcome of the check called `name`, if it ran.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.name == name)
    }

    pub fn assert_all_passed(&self) {
        let failed: Vec<&Outcome> = self.failed().collect();
        assert!(failed.is_empty(), "conformance failures: {failed:#?}");
        assert!(self.passed().next().is_some(), "no conformance case ran");
    }

    /// One line per outcome, then the totals.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for outcome in &self.outcomes {
            let mark = if outcome.passed { "pass" } else { "FAIL" };
            text.push_str(&format!("{mark}  [{}] {}", outcome.section, outcome.name));
            if !outcome.detail.is_empty() {
                text.push_str(&format!(": {}", outcome.detail));
            }
            text.push('\n');
        }
        text.push_str(&format!(
            "{} passed, {} failed\n",
            self.passed().count(),
            self.failed().count()
        ));
        text
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "passed": self.passed().count(),
            "failed": self.failed().count(),
            "outcomes": self.outcomes,
        })
        .to_string()
    }
}
