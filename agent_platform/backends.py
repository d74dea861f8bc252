"""Build the orchestrator the settings name: the one place that knows every backend."""

from __future__ import annotations

from orchestrators.base import Orchestrator
from orchestrators.docker import DockerConfig, DockerOrchestrator

from .settings import Settings

__all__ = ["build_orchestrator"]

_TOLERATION_FIELDS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})


def build_orchestrator(settings: Settings) -> Orchestrator:
    if settings.orchestrator == "docker":
        return DockerOrchestrator(
            DockerConfig(
                base_url=settings.docker_host,
                timeout=settings.engine_timeout,
                network=settings.network,
                service_container=settings.service_container,
                resource_prefix=settings.resource_prefix,
                pull_missing_images=settings.pull_missing_images,
                workspace_path=settings.workspace_path,
                stop_timeout=settings.stop_timeout,
                max_workers=settings.engine_threads,
                max_log_streams=settings.max_log_streams,
                read_only_rootfs=settings.read_only_rootfs,
                orphan_grace_seconds=settings.orphan_grace_seconds,
                agent_user=settings.agent_user or None,
                pull_timeout=settings.pull_timeout,
                pull_threads=settings.pull_threads,
                max_pulls_per_owner=settings.max_pulls_per_owner,
                allow_private_registries=settings.allow_private_registries,
                log_driver=settings.agent_log_driver,
                log_max_size=settings.agent_log_max_size,
                log_max_files=settings.agent_log_max_files,
            )
        )
    # Imported here: a Docker deployment never loads the Kubernetes client.
    from orchestrators.kubernetes import KubernetesConfig, KubernetesOrchestrator

    for toleration in settings.kube_tolerations:
        unknown = sorted(set(toleration) - _TOLERATION_FIELDS)
        if unknown:
            raise ValueError(f"AGENT_API_KUBE_TOLERATIONS: unknown field(s) {', '.join(unknown)}")
    return KubernetesOrchestrator(
        KubernetesConfig(
            namespace=settings.kube_namespace,
            kubeconfig=str(settings.kubeconfig) if settings.kubeconfig else None,
            context=settings.kube_context,
            timeout=settings.engine_timeout,
            retries=settings.kube_retries,
            resource_prefix=settings.resource_prefix,
            workspace_path=settings.workspace_path,
            workspace_size=settings.kube_workspace_size,
            storage_class=settings.kube_storage_class,
            stop_timeout=settings.stop_timeout,
            max_workers=settings.engine_threads,
            max_log_streams=settings.max_log_streams,
            read_only_rootfs=settings.read_only_rootfs,
            run_as_non_root=settings.kube_run_as_non_root,
            run_as_user=settings.kube_run_as_user,
            fs_group=settings.kube_fs_group,
            image_pull_secret=settings.kube_image_pull_secret,
            pull_missing_images=settings.pull_missing_images,
            node_selector=dict(settings.kube_node_selector),
            tolerations=tuple(dict(t) for t in settings.kube_tolerations),
            spawn_wait_seconds=settings.spawn_wait_seconds,
            orphan_grace_seconds=settings.orphan_grace_seconds,
            baseline_network_policy=settings.kube_baseline_network_policy,
            ingress_namespaces=tuple(settings.kube_ingress_namespaces),
            denied_cidrs=tuple(settings.kube_egress_denied_cidrs),
            network_policy_enforced=settings.kube_network_policy_enforced,
            ephemeral_storage_request=settings.kube_ephemeral_storage_request,
            ephemeral_storage_limit=settings.kube_ephemeral_storage_limit,
            workspace_access_mode=settings.kube_workspace_access_mode,
            runtime_class=settings.kube_runtime_class,
            user_namespaces=settings.kube_user_namespaces,
        )
    )
