-- Utilization per user and ISO week (Monday first): hours logged against the user's weekly
-- capacity, all hours and billable hours. Weeks without time entries have no row.
with weekly as (
    select
        user__id as user_id,
        date_trunc('week', spent_date)::date as week_start,
        count(*) as entries,
        sum(hours) as hours,
        coalesce(sum(hours) filter (where billable), 0) as billable_hours,
        coalesce(sum(hours * billable_rate) filter (where billable), 0) as billable_amount
    from {{ source('harvest', 'time_entries') }}
    group by user__id, date_trunc('week', spent_date)
)

select
    weekly.user_id,
    trim(concat_ws(' ', users.first_name, users.last_name)) as user_name,
    weekly.week_start,
    weekly.entries,
    weekly.hours,
    weekly.billable_hours,
    weekly.billable_amount,
    users.weekly_capacity / 3600.0 as capacity_hours,
    100 * weekly.hours / nullif(users.weekly_capacity / 3600.0, 0) as utilization_pct,
    100 * weekly.billable_hours / nullif(users.weekly_capacity / 3600.0, 0) as billable_utilization_pct
from weekly
left join {{ source('harvest', 'users') }} as users on users.id = weekly.user_id
