//! The conformance cases: small async functions grouped by topic, and the helpers they share.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::Harness;
use crate::{
    overlay, Attr, Context, Entry, FileType, Ino, MetaEngine, Result, SetAttr, SetTime, Slice,
    Timestamp, ROOT_INO,
};

mod acl;
mod attrs;
mod checkpoint;
mod clients;
mod clone;
mod compaction;
mod create;
mod data;
mod flags;
mod locks;
mod lookup;
mod names;
mod open;
mod perms;
mod quota;
mod readdir;
mod remove;
mod rename;
mod sessions;
mod settings;
mod space;
mod trash;
mod upkeep;
mod xattr;

/// What a case runs against: a fresh volume and one connected client.
pub(super) struct Fixture<'h> {
    /// The harness, for cases that need an unformatted volume.
    pub h: &'h dyn Harness,
    /// The volume, for cases that connect more clients.
    pub vol: Box<dyn super::TestVolume>,
    /// The first client.
    pub a: Arc<dyn MetaEngine>,
}

impl<'h> Fixture<'h> {
    pub(super) async fn new(h: &'h dyn Harness) -> Result<Fixture<'h>> {
        let vol = h.new_volume().await?;
        let a = vol.connect().await?;
        Ok(Fixture { h, vol, a })
    }

    /// A second (third, …) client of the same volume.
    pub async fn client(&self) -> Result<Arc<dyn MetaEngine>> {
        self.vol.connect().await
    }
}

/// The future a case returns.
pub(super) type CaseFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// A named conformance case.
#[derive(Clone, Copy)]
pub(super) struct Case {
    pub name: &'static str,
    pub run: for<'a, 'h> fn(&'a Fixture<'h>) -> CaseFuture<'a>,
}

/// Builds the case list from plain `async fn(&Fixture) -> Result<()>` items.
macro_rules! cases {
    ($($module:ident :: $case:ident),* $(,)?) => {
        vec![$(Case {
            name: concat!(stringify!($module), "::", stringify!($case)),
            run: {
                fn run<'a, 'h>(fx: &'a Fixture<'h>) -> CaseFuture<'a> {
                    Box::pin($module::$case(fx))
                }
                run
            },
        }),*]
    };
}

/// Asserts that `$res` (a `Result`) is an error matching `$pat`, showing what came instead.
macro_rules! assert_err {
    ($res:expr, $pat:pat) => {{
        let res = $res;
        assert!(
            matches!(res, Err($pat)),
            "{}: expected Err({}), got {:?}",
            stringify!($res),
            stringify!($pat),
            res
        );
    }};
}
pub(crate) use assert_err;

/// Every case, in the order they run.
pub(super) fn all() -> Vec<Case> {
    cases![
        settings::unformatted_volume_does_not_load,
        settings::init_twice_without_force_is_exists,
        settings::init_force_rewrites_settings,
        settings::settings_keep_unknown_fields,
        settings::formatted_volume_loads,
        settings::new_session_on_fresh_volume,
        sessions::each_client_has_a_session,
        sessions::heartbeat_extends_expiry,
        sessions::close_session_removes_it,
        sessions::new_session_after_close_is_listed,
        sessions::reap_with_current_time_keeps_live_sessions,
        sessions::reap_in_the_future_removes_sessions,
        sessions::reap_releases_sustained_inodes,
        sessions::close_session_releases_sustained_inodes,
        lookup::missing_name_is_not_found,
        lookup::missing_parent_is_not_found,
        lookup::lookup_in_file_is_not_dir,
        lookup::dot_and_dotdot,
        lookup::lookup_needs_search_permission,
        lookup::getattr_of_root,
        lookup::getattr_of_missing_is_not_found,
        attrs::chmod_by_owner,
        attrs::chmod_by_other_is_not_permitted,
        attrs::chmod_drops_sgid_outside_group,
        attrs::chown_needs_root,
        attrs::chgrp_to_own_group_only,
        attrs::chown_clears_suid_and_sgid,
        attrs::utimens_explicit_needs_owner,
        attrs::utimens_now_needs_write,
        attrs::setattr_size_truncates,
        attrs::setattr_size_needs_write,
        attrs::setattr_of_missing_is_not_found,
        attrs::setattr_returns_what_getattr_sees,
        attrs::flags_need_root,
        flags::immutable_file_cannot_change,
        flags::append_only_file_only_grows,
        flags::immutable_directory_keeps_its_entries,
        flags::append_only_directory_only_gains_entries,
        create::mknod_every_type,
        create::mknod_existing_is_exists,
        create::mknod_in_file_is_not_dir,
        create::mknod_in_missing_parent_is_not_found,
        create::create_updates_parent_times,
        create::mkdir_increments_parent_nlink,
        create::mkdir_existing_is_exists,
        create::mkdir_in_file_is_not_dir,
        create::symlink_round_trip,
        create::symlink_target_limits,
        create::readlink_of_non_symlink_is_invalid,
        create::readlink_of_missing_is_not_found,
        create::link_counts_names,
        create::link_directory_is_not_permitted,
        create::link_existing_name_is_exists,
        create::link_missing_inode_is_not_found,
        create::link_updates_times,
        names::name_of_255_bytes_ok_256_too_long,
        names::slash_and_nul_are_invalid,
        names::dot_and_empty_names_are_invalid,
        names::non_utf8_names_round_trip,
        remove::unlink_missing_is_not_found,
        remove::unlink_directory_is_isdir,
        remove::unlink_decrements_nlink,
        remove::unlink_updates_parent_times,
        remove::unlink_removes_the_name,
        remove::unlink_needs_write_permission,
        remove::rmdir_not_empty,
        remove::rmdir_of_file_is_not_dir,
        remove::rmdir_decrements_parent_nlink,
        remove::rmdir_missing_is_not_found,
        remove::unlink_many_has_the_effect_of_each_unlink,
        remove::unlink_many_stops_at_the_first_failure,
        remove::unlink_many_checks_each_entry,
        remove::remove_tree_removes_a_deep_and_wide_tree,
        remove::remove_tree_stops_where_rm_r_would,
        remove::remove_tree_with_a_trash_moves_everything_there,
        rename::rename_moves_entry,
        rename::rename_over_file_replaces_it,
        rename::rename_dir_over_empty_dir,
        rename::rename_dir_over_non_empty_dir_is_not_empty,
        rename::rename_file_over_dir_is_isdir,
        rename::rename_dir_over_file_is_not_dir,
        rename::rename_noreplace,
        rename::rename_exchange_files,
        rename::rename_exchange_file_and_dir_across_dirs,
        rename::rename_exchange_missing_target_is_not_found,
        rename::rename_into_own_subtree_is_invalid,
        rename::rename_between_hard_links_is_noop,
        rename::rename_updates_parent_times,
        rename::rename_dir_across_parents_fixes_nlink_and_dotdot,
        rename::rename_in_sticky_dir_needs_ownership,
        rename::rename_missing_source_is_not_found,
        rename::rename_invalid_flags,
        rename::rename_needs_write_on_both_dirs,
        rename::rename_over_open_file_keeps_it_readable,
        perms::create_needs_write_permission,
        perms::supplementary_group_grants_access,
        perms::setgid_dir_is_inherited,
        perms::umask_applies,
        perms::new_inode_belongs_to_caller,
        perms::sticky_dir_unlink_needs_ownership,
        perms::owner_triplet_wins_over_group,
        readdir::lists_all_sorted,
        readdir::paging_with_small_limits,
        readdir::paging_while_entries_change,
        readdir::plus_fills_attrs,
        readdir::needs_read_permission,
        readdir::readdir_of_file_is_not_dir,
        readdir::empty_dir_and_past_the_end,
        open::open_checks_access_mode,
        open::open_trunc_needs_write,
        open::open_dir_for_write_is_isdir,
        open::open_missing_is_not_found,
        open::unlinked_open_file_stays_readable,
        open::unlinked_open_file_across_clients,
        open::reopened_file_stays_protected_after_a_close,
        open::two_opens_need_two_closes,
        data::huge_sparse_file_is_cheap_to_delete,
        data::copying_a_huge_sparse_file_touches_only_existing_chunks,
        data::punching_a_huge_sparse_range_touches_only_existing_chunks,
        data::write_slice_extends_length_and_sets_mtime,
        data::write_slice_never_shrinks,
        data::write_slice_counts_the_chunk_records,
        data::read_chunk_returns_slices_in_write_order,
        data::read_chunk_of_empty_file,
        data::data_on_missing_inode_is_not_found,
        data::slice_ids_unique_across_clients,
        data::truncate_shrink_then_grow_reads_zeros,
        data::truncate_drops_whole_chunks,
        data::truncate_directory_is_isdir,
        data::truncate_needs_write,
        data::truncate_past_max_is_file_too_big,
        data::truncate_updates_mtime,
        data::fallocate_extends_length,
        data::fallocate_keep_size,
        data::fallocate_punch_hole_needs_keep_size,
        data::fallocate_punch_hole_zeroes_range,
        data::fallocate_zero_range,
        data::fallocate_past_max_is_file_too_big,
        data::fallocate_zero_length_is_invalid,
        data::copy_file_range_shares_slices,
        data::copy_file_range_short_at_eof,
        data::copy_file_range_at_offset_grows_dst,
        data::copy_file_range_copies_holes,
        data::copy_file_range_across_chunks,
        data::copy_file_range_of_directory_is_isdir,
        data::purge_keeps_slices_shared_by_copy,
        xattr::set_get_list_remove,
        xattr::create_existing_is_exists,
        xattr::replace_missing_is_noattr,
        xattr::missing_attr_is_noattr,
        xattr::list_is_sorted,
        xattr::value_size_limit,
        xattr::name_length_limit,
        xattr::needs_write_permission,
        xattr::missing_inode_is_not_found,
        xattr::binary_and_empty_values,
        compaction::commit_swaps_the_records,
        compaction::records_appended_meanwhile_stay,
        compaction::a_chunk_compacted_by_another_client_refuses,
        compaction::shared_slices_are_not_freed,
        compaction::trash_volumes_keep_the_old_slices,
        compaction::bad_plans_and_files_are_refused,
        space::statfs_counts_inodes,
        space::statfs_counts_space,
        space::statfs_is_juicefs_formula,
        space::statfs_reports_limits,
        space::unlinked_file_is_queued_for_purge,
        space::purge_refuses_live_file,
        space::deleted_files_respects_limit,
        space::purge_files_purges_many_at_once,
        space::purge_files_by_two_clients_free_each_slice_once,
        locks::flock_shared_locks_coexist,
        locks::a_reaped_session_takes_no_lock_until_its_heartbeat,
        locks::flock_exclusive_conflicts_across_clients,
        locks::flock_owners_of_one_session_conflict,
        locks::flock_upgrade_and_downgrade,
        locks::flock_unlock_releases,
        locks::flock_on_directory_and_missing_inode,
        locks::flock_blocking_waits_for_unlock,
        locks::blocking_wait_is_cancelled_by_dropping_it,
        locks::blocking_wait_ends_with_the_session,
        locks::plock_getlk_without_conflict_is_unlock,
        locks::plock_conflicts_across_clients,
        locks::plock_unlock_splits_and_relock_merges,
        locks::plock_same_owner_replaces_its_locks,
        locks::plock_owners_of_one_session_conflict,
        locks::plock_to_end_of_file,
        locks::plock_blocking_waits_for_unlock,
        locks::plock_invalid_requests,
        locks::plock_on_directory,
        locks::flock_and_plock_are_independent,
        locks::close_session_releases_locks,
        locks::reap_releases_locks,
        locks::locks_need_a_session,
        clients::create_in_a_visible_in_b,
        clients::write_in_a_readable_in_b,
        clients::rename_in_b_visible_in_a,
        clients::attrs_and_xattrs_shared,
        clients::open_sees_other_clients_length,
        acl::off_by_default_is_not_supported,
        acl::access_acl_round_trip,
        acl::named_user_gets_what_mode_bits_deny,
        acl::group_entries_and_the_mask,
        acl::chmod_updates_the_mask,
        acl::minimal_acl_is_just_mode_bits,
        acl::default_acl_inherited_by_files,
        acl::default_acl_inherited_by_directories,
        acl::remove_acl_xattrs,
        acl::invalid_wire_data_is_invalid_argument,
        acl::only_the_owner_sets_acls,
        acl::equal_acls_share_one_id,
        upkeep::purge_leaves_freed_slices_pending,
        upkeep::forget_slices_forgets_only_pending_ones,
        upkeep::forgetting_a_referenced_slice_changes_nothing,
        upkeep::compaction_leaves_freed_slices_pending,
        upkeep::list_slices_covers_live_deleted_and_pending,
        upkeep::list_slices_shows_delayed_slices,
        upkeep::claim_job_elects_once_per_interval,
        upkeep::sync_dir_stat_counts_direct_entries,
        upkeep::dir_stats_count_each_name_of_a_hard_linked_file,
        upkeep::dir_stats_off_computes_but_stores_nothing,
        upkeep::dir_stats_stay_exact_through_every_change,
        upkeep::recount_usage_of_a_consistent_volume_changes_nothing,
        trash::trash_is_found_only_with_trash_days,
        trash::unlink_moves_the_file_into_the_hour_directory,
        trash::rmdir_and_rename_over_move_into_the_trash,
        trash::a_hard_link_keeps_parent_zero_in_the_trash,
        trash::the_trash_is_guarded,
        trash::root_deletes_inside_the_trash_for_real,
        trash::restore_puts_entries_back,
        trash::skip_trash_flag_deletes_for_real,
        trash::delayed_slices_are_freed_after_their_days,
        quota::a_directory_quota_refuses_the_entry_past_its_limit,
        quota::a_space_quota_counts_4k_blocks_of_every_length_change,
        quota::renames_move_usage_between_quotas,
        quota::user_and_group_quotas_follow_owners,
        quota::the_trash_frees_directory_usage_and_keeps_the_owners,
        quota::quotas_are_set_listed_and_refused_precisely,
        checkpoint::held_slices_outlive_their_files,
        checkpoint::a_hold_never_brings_a_freed_slice_back,
        checkpoint::a_wipe_keeps_the_setting_and_the_counters,
        checkpoint::node_contents_match_node_by_node_reads,
        clone::a_tree_clone_shares_every_slice,
        clone::a_file_clone_is_one_entry_with_the_callers_owner,
        clone::clone_refusals_are_precise_and_change_nothing,
        clone::a_clone_past_a_quota_leaves_nothing,
        clone::a_crashed_clone_stays_detached_until_it_is_old,
    ]
}

// ----- shared helpers -----

/// A fixed old time that tests set explicitly to see later updates without sleeping.
pub(super) const OLD: Timestamp = Timestamp {
    sec: 1_000_000,
    nsec: 0,
};
/// An unprivileged user.
pub(super) const ALICE: u32 = 1000;
/// Another unprivileged user.
pub(super) const BOB: u32 = 1001;
/// A third unprivileged user.
pub(super) const CAROL: u32 = 1002;

/// The superuser.
pub(super) fn root() -> Context {
    Context::root()
}

/// An unprivileged user whose primary group has the same number.
pub(super) fn user(uid: u32) -> Context {
    Context::new(uid, uid)
}

/// Creates a regular file (`0o644`, as root).
pub(super) async fn file(e: &dyn MetaEngine, parent: Ino, name: &str) -> Result<Ino> {
    Ok(e.mknod(
        &root(),
        parent,
        name.as_bytes(),
        FileType::Regular,
        0o644,
        0,
    )
    .await?
    .ino)
}

/// Creates a directory (`0o755`, as root).
pub(super) async fn dir(e: &dyn MetaEngine, parent: Ino, name: &str) -> Result<Ino> {
    Ok(e.mkdir(&root(), parent, name.as_bytes(), 0o755).await?.ino)
}

/// Gives `ino` to `uid` (group `uid`) with `mode`, as root.
pub(super) async fn own(e: &dyn MetaEngine, ino: Ino, uid: u32, mode: u16) -> Result<Attr> {
    e.setattr(&root(), ino, &SetAttr::new().uid(uid).gid(uid).mode(mode))
        .await
}

/// A directory in the root owned by `uid` with `mode`.
pub(super) async fn owned_dir(e: &dyn MetaEngine, name: &str, uid: u32, mode: u16) -> Result<Ino> {
    let d = dir(e, ROOT_INO, name).await?;
    own(e, d, uid, mode).await?;
    Ok(d)
}

/// A regular file in `parent` owned by `uid` with `mode`.
pub(super) async fn owned_file(
    e: &dyn MetaEngine,
    parent: Ino,
    name: &str,
    uid: u32,
    mode: u16,
) -> Result<Ino> {
    let f = file(e, parent, name).await?;
    own(e, f, uid, mode).await?;
    Ok(f)
}

/// Writes a new slice of `len` bytes at `pos` of chunk `index`; returns the slice.
pub(super) async fn write(
    e: &dyn MetaEngine,
    ino: Ino,
    index: u32,
    pos: u32,
    len: u32,
) -> Result<Slice> {
    let id = e.new_slice_id().await?;
    let s = Slice {
        pos,
        id,
        size: len,
        off: 0,
        len,
    };
    e.write_slice(ino, index, s, Timestamp::now()).await?;
    Ok(s)
}

/// What a reader sees in `0..len` of chunk `index`: pieces of slices and holes (`id == 0`),
/// with neighbouring pieces of one slice (or of holes) merged, so that engines that store
/// the same content differently compare equal.
pub(super) async fn visible(
    e: &dyn MetaEngine,
    ino: Ino,
    index: u32,
    len: u32,
) -> Result<Vec<Slice>> {
    let slices = e.read_chunk(ino, index).await?;
    Ok(normalize(overlay::pieces(&overlay::build(&slices), 0, len)))
}

/// Merges neighbouring pieces that continue each other and blanks the slice fields of holes.
pub(crate) fn normalize(pieces: Vec<Slice>) -> Vec<Slice> {
    let mut out: Vec<Slice> = Vec::with_capacity(pieces.len());
    for mut p in pieces {
        if p.len == 0 {
            continue;
        }
        if p.id == 0 {
            p.size = 0;
            p.off = 0;
        }
        if let Some(last) = out.last_mut() {
            let continues = last.id == p.id
                && last.pos + last.len == p.pos
                && (p.id == 0 || (last.off + last.len == p.off && last.size == p.size));
            if continues {
                last.len += p.len;
                continue;
            }
        }
        out.push(p);
    }
    out
}

/// A hole piece for [`visible`] comparisons.
pub(super) fn hole(pos: u32, len: u32) -> Slice {
    Slice {
        pos,
        id: 0,
        size: 0,
        off: 0,
        len,
    }
}

/// The piece `pos..pos+len` of a slice written at `s.pos` (offsets within it follow).
pub(super) fn piece(s: Slice, pos: u32, len: u32) -> Slice {
    Slice {
        pos,
        off: s.off + (pos - s.pos),
        len,
        ..s
    }
}

/// Sets atime and mtime of `ino` to [`OLD`] (as root) and returns the attributes, so that
/// a later operation's time update shows without sleeping.
pub(super) async fn age(e: &dyn MetaEngine, ino: Ino) -> Result<Attr> {
    let set = SetAttr::new()
        .atime(SetTime::At(OLD))
        .mtime(SetTime::At(OLD));
    e.setattr(&root(), ino, &set).await
}

/// Asserts that an operation updated mtime (from [`OLD`]) and did not move ctime back.
pub(super) fn assert_touched(before: &Attr, after: &Attr, what: &str) {
    assert!(
        after.mtime > OLD,
        "{what}: mtime not updated (still {:?})",
        after.mtime
    );
    assert!(
        after.ctime >= before.ctime,
        "{what}: ctime went back from {:?} to {:?}",
        before.ctime,
        after.ctime
    );
}

/// Asserts that `t` is the engine's idea of "now", taken between `lo` and `hi` (one second
/// of slack either side for clocks that store coarser times).
pub(super) fn assert_now(t: Timestamp, lo: Timestamp, hi: Timestamp, what: &str) {
    assert!(
        t.sec >= lo.sec - 1 && t.sec <= hi.sec + 1,
        "{what}: {t:?} is not between {lo:?} and {hi:?}"
    );
}

/// Looks `name` up as root.
pub(super) async fn look(e: &dyn MetaEngine, parent: Ino, name: &str) -> Result<Entry> {
    e.lookup(&root(), parent, name.as_bytes()).await
}

/// Every name in directory `ino`, read page by page with `limit` entries per page.
pub(super) async fn list_names(e: &dyn MetaEngine, ino: Ino, limit: usize) -> Result<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    loop {
        let after = out.last().cloned();
        let page = e
            .readdir(&root(), ino, after.as_deref(), limit, false)
            .await?;
        assert!(
            page.len() <= limit,
            "readdir returned {} > limit {limit}",
            page.len()
        );
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page.into_iter().map(|d| d.name));
    }
}

/// Whether `ino` is among the files waiting for purge.
pub(super) async fn is_deleted(e: &dyn MetaEngine, ino: Ino) -> Result<bool> {
    Ok(e.deleted_files(usize::MAX)
        .await?
        .iter()
        .any(|d| d.ino == ino))
}

/// The ids of slices `purge_file` returned.
pub(super) fn ids(slices: &[Slice]) -> Vec<u64> {
    let mut v: Vec<u64> = slices.iter().map(|s| s.id).collect();
    v.sort_unstable();
    v.dedup();
    v
}
