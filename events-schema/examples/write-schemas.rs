//! Regenerates `events-schema/schemas/*.schema.json` from the Rust types.
fn main() -> std::io::Result<()> {
    for (name, schema) in podflow_events::schema::all_schemas() {
        let path = podflow_events::schema::schema_path(name);
        std::fs::write(&path, podflow_events::schema::render(&schema))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
