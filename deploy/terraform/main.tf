# Prefect resources for Headwater as Terraform (provider PrefectHQ/prefect): the process work pool, the
# per-target concurrency limit, the two deployments of prefect.yaml and the failure automation's webhook.
# `headwater deploy` creates the same objects from prefect.yaml; use one or the other for a given server.

terraform {
  required_providers {
    prefect = {
      source  = "PrefectHQ/prefect"
      version = "~> 2.0"
    }
  }
}

provider "prefect" {
  endpoint = var.prefect_api_url
}

variable "prefect_api_url" {
  description = "The Prefect server's API, e.g. http://prefect-server:4200/api"
  type        = string
}

variable "target" {
  description = "The Headwater target the deployments run against"
  type        = string
  default     = "postgres"
}

variable "project_dir" {
  description = "Where the worker finds the Headwater checkout"
  type        = string
  default     = "/app"
}

resource "prefect_work_pool" "headwater" {
  name = "headwater-process"
  type = "process"
}

resource "prefect_global_concurrency_limit" "target" {
  name   = "headwater-target-${var.target}"
  limit  = 1
  active = true
}

resource "prefect_flow" "materialize" {
  name = "headwater-materialize"
}

resource "prefect_deployment" "hourly_incremental" {
  name           = "hourly-incremental"
  flow_id        = prefect_flow.materialize.id
  entrypoint     = "orchestration/prefect/flow.py:materialize_flow"
  work_pool_name = prefect_work_pool.headwater.name
  tags           = ["headwater", "incremental", "shop"]
  parameters = jsonencode({
    selection = "source:raw_shop+"
    target    = var.target
  })
  job_variables     = jsonencode({ working_dir = var.project_dir })
  concurrency_limit = 1
  concurrency_options = {
    collision_strategy = "ENQUEUE"
  }
}

resource "prefect_deployment" "nightly_full" {
  name           = "nightly-full"
  flow_id        = prefect_flow.materialize.id
  entrypoint     = "orchestration/prefect/flow.py:materialize_flow"
  work_pool_name = prefect_work_pool.headwater.name
  tags           = ["headwater", "full-refresh"]
  parameters = jsonencode({
    target       = var.target
    full_refresh = true
  })
  job_variables     = jsonencode({ working_dir = var.project_dir })
  concurrency_limit = 1
  concurrency_options = {
    collision_strategy = "ENQUEUE"
  }
}

resource "prefect_deployment_schedule" "hourly" {
  deployment_id = prefect_deployment.hourly_incremental.id
  active        = true
  cron          = "0 * * * *"
  timezone      = "UTC"
}

resource "prefect_deployment_schedule" "nightly" {
  deployment_id = prefect_deployment.nightly_full.id
  active        = true
  cron          = "0 2 * * *"
  timezone      = "UTC"
}
