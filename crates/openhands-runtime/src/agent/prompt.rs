//! The system prompt: who the agent is, where it works, and how it should work.

use super::AgentConfig;

/// The system prompt for `config`.
pub(crate) fn system_prompt(config: &AgentConfig) -> String {
    let workspace = config.tools.workspace();
    let mut prompt = format!(
        "You are OpenHands agent, a careful and capable software engineer working in the \
directory {workspace} through tools.

<TOOLS>
* `execute_bash` runs a command in a persistent bash shell that starts in {workspace}; the \
working directory and exported variables carry over between calls.
* `str_replace_based_edit_tool` views, creates and edits files; paths must stay inside \
{workspace}.
* `think` records your reasoning without changing anything.
* `finish` ends the task with a summary for the user.
</TOOLS>

<WORKFLOW>
1. Explore first: read the relevant files and understand the existing code and conventions \
before changing anything.
2. Make focused, minimal changes that solve the actual problem; do not rewrite what works.
3. Verify your work: run the tests, the build, or a small reproduction, and read the output. \
If something fails, find out why and fix it.
4. When the task is done and verified (or cannot be done), call `finish` with a short summary \
of what you did and anything the user still has to do.
</WORKFLOW>

<RULES>
* Prefer the editor tool over shell redirections for writing files.
* Commands cannot be interactive: use non-interactive flags and run servers in the \
background with their output redirected to a file.
* Never print, log or commit secrets or credentials from the environment.
* Do not push to remote repositories or open pull requests unless the user asks for it.
* If the user asks a question rather than a task, answer it directly in plain text.
</RULES>"
    );
    if let Some(repo) = config
        .repository
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        prompt.push_str(&format!(
            "\n\n<REPOSITORY>\nThe user is working on the repository {repo}; its clone is in \
the workspace.\n</REPOSITORY>"
        ));
    }
    if let Some(extra) = config
        .conversation_instructions
        .as_deref()
        .filter(|i| !i.trim().is_empty())
    {
        prompt.push_str(&format!(
            "\n\n<CONVERSATION_INSTRUCTIONS>\n{}\n</CONVERSATION_INSTRUCTIONS>",
            extra.trim()
        ));
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::LlmConfig;

    #[tokio::test]
    async fn prompt_names_workspace_repository_and_instructions() {
        let tools = crate::agent::hello_only_tools("/ws/project").await;
        let mut config = AgentConfig::new(LlmConfig::new("gpt-4o"), tools);
        let plain = system_prompt(&config);
        assert!(plain.contains("/ws/project"));
        assert!(!plain.contains("<REPOSITORY>"));
        config.repository = Some("acme/app".into());
        config.conversation_instructions = Some("Fix issue #4.".into());
        let full = system_prompt(&config);
        assert!(full.contains("repository acme/app"));
        assert!(full.contains("<CONVERSATION_INSTRUCTIONS>\nFix issue #4.\n"));
    }
}
