{#- A model's `schema` config is its schema, as written (`marts`), not dbt's default
    `<target schema>_<schema>`: the warehouse's schemas are named in the project's contract. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
