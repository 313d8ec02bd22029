//! Regenerates `events-schema/schemas/*.schema.json` from the Rust types, and the
//! EpisodeSummarized schema registry document in `infra/template.yaml`.
fn main() -> std::io::Result<()> {
    for (name, schema) in podflow_events::schema::all_schemas() {
        let path = podflow_events::schema::schema_path(name);
        std::fs::write(&path, podflow_events::schema::render(&schema))?;
        println!("wrote {}", path.display());
    }
    let template = podflow_events::schema::crate_dir().join("../infra/template.yaml");
    let text = std::fs::read_to_string(&template)?;
    let document = podflow_events::registry::openapi::<podflow_events::EpisodeSummarized>();
    match podflow_events::registry::with_content(&text, "EpisodeSummarizedSchema", &document) {
        Some(updated) => {
            std::fs::write(&template, updated)?;
            println!(
                "wrote the EpisodeSummarizedSchema content in {}",
                template.display()
            );
        }
        None => eprintln!(
            "{} has no EpisodeSummarizedSchema resource with a `Content: |-` block",
            template.display()
        ),
    }
    Ok(())
}
