{#- Rows of a dlt-loaded source whose load completed: dlt records a load in `_dlt_loads` (status 0) only
    after every table of its package is written, so a run killed mid-load leaves rows that no model
    reads until `headwater ingest` finishes the package. Use as: where {{ completed_loads(source(...)) }} -#}
{% macro completed_loads(relation) -%}
    {%- set loads = api.Relation.create(database=relation.database, schema=relation.schema, identifier='_dlt_loads') -%}
    _dlt_load_id in (select load_id from {{ loads }} where status = 0)
{%- endmacro %}
