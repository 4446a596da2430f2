//! The Cucumber JSON format, as cucumber-js and cucumber-jvm emit it and cucumber-html-reporter
//! or Jenkins' Cucumber plugin read it: an array of features, each with its scenarios
//! (`elements`) and their steps with a `result` (status, duration in nanoseconds, error).
//!
//! The model has no line for a feature or a tag: the feature is put on line 1 (line 2 under a
//! tag line), a scenario's tags on the line above it. The consumers named above read names,
//! statuses and durations only.

use std::io::{self, Write};

use serde_json::{json, Map, Value};

use super::{FeatureReport, RunReport, ScenarioReport, StepReport};

pub fn write(report: &RunReport, out: &mut impl Write) -> io::Result<()> {
    let features: Vec<Value> = report.features.iter().map(feature).collect();
    serde_json::to_writer_pretty(&mut *out, &features)?;
    writeln!(out)
}

fn feature(feature: &FeatureReport) -> Value {
    let id = slug(&feature.name);
    let line: usize = if feature.tags.is_empty() { 1 } else { 2 };
    let elements: Vec<Value> = feature
        .scenarios
        .iter()
        .zip(feature.case_names())
        .map(|(s, case)| scenario(&id, s, &case))
        .collect();
    json!({
        "uri": feature.path,
        "id": id,
        "keyword": "Feature",
        "name": feature.name,
        "description": feature.description.as_deref().unwrap_or_default(),
        "line": line,
        "tags": tags(&feature.tags, line.saturating_sub(1)),
        "elements": elements,
    })
}

/// `case` is the feature-unique name ([`FeatureReport::case_names`]), which the id is made of.
fn scenario(feature_id: &str, scenario: &ScenarioReport, case: &str) -> Value {
    json!({
        "id": format!("{feature_id};{}", slug(case)),
        "keyword": scenario.keyword,
        "name": scenario.name,
        "description": "",
        "line": scenario.line,
        "type": "scenario",
        "tags": tags(&scenario.tags, scenario.line.saturating_sub(1)),
        "steps": scenario.steps.iter().map(step).collect::<Vec<_>>(),
    })
}

fn step(step: &StepReport) -> Value {
    let mut result = Map::new();
    result.insert("status".into(), step.status.as_str().into());
    let nanos = u64::try_from(step.duration.as_nanos()).unwrap_or(u64::MAX);
    result.insert("duration".into(), nanos.into());
    if let Some(error) = &step.error {
        result.insert("error_message".into(), error.as_str().into());
    }
    let mut value = json!({
        "keyword": step.keyword,
        "name": step.text,
        "line": step.line,
        "result": result,
    });
    if !step.table.is_empty() {
        let rows: Vec<Value> = step.table.iter().map(|r| json!({ "cells": r })).collect();
        value["rows"] = rows.into();
    }
    value
}

fn tags(tags: &[String], line: usize) -> Vec<Value> {
    tags.iter()
        .map(|t| json!({ "name": format!("@{}", t.trim_start_matches('@')), "line": line }))
        .collect()
}

/// Cucumber's ids: lower case, every run of other characters than letters and digits made
/// one `-`.
fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}
