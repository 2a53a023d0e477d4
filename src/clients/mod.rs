pub mod webcrm;
