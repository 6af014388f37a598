{#- Use a node's custom schema as is (marts, staging, ...), not prefixed with the target schema:
    asset keys are warehouse relations like marts.orders on every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
