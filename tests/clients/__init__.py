"""The clients (library, agentctl, RemoteAgentManager) against the real service and engine."""
