-- Hours and billable amount per project and day, from the time entries as Harvest holds them now.
select
    project__id as project_id,
    spent_date,
    max(client__id) as client_id,
    count(*) as entries,
    sum(hours) as hours,
    coalesce(sum(hours) filter (where billable), 0) as billable_hours,
    coalesce(sum(hours * billable_rate) filter (where billable), 0) as billable_amount,
    coalesce(sum(hours * cost_rate), 0) as cost_amount
from {{ source('harvest', 'time_entries') }}
group by project__id, spent_date
